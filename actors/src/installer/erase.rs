//! `erase_devices_metadata`, `erase_devices`, `erase_devices_express` (§11.1).
//!
//! Every device is checked against the allow-list before anything touches it.

use std::collections::BTreeSet;
use std::path::Path;

use futures_util::stream::{self, StreamExt};
use serde_json::{Map, Value};

use super::disks::{self, BlockDev};
use super::failures;
use super::steps::StepEnv;
use crate::errors::AgentError;
use crate::host::{CommandOutput, CommandSpec};

/// IBM GPFS partition type.
const GPFS_GUID: &str = "37affc90-ef7d-4e96-91c3-2d7ae055b174";
/// VMFS GPT partition type.
const VMFS_GUID: &str = "aa31e02a-400f-11db-9590-000c2911d1b8";
/// VMFS MBR partition type.
const VMFS_MBR: &str = "0xfb";

/// The `driver_internal_info` flags of §11.1.
#[derive(Debug, Clone)]
pub struct EraseFlags {
    /// `agent_enable_nvme_secure_erase` (true).
    pub nvme_secure_erase: bool,
    /// `agent_enable_ata_secure_erase` (true).
    pub ata_secure_erase: bool,
    /// `agent_continue_if_secure_erase_failed` / `agent_continue_if_ata_erase_failed` (false).
    pub continue_if_secure_erase_failed: bool,
    /// `agent_erase_devices_zeroize` (true).
    pub zeroize: bool,
    /// `agent_erase_devices_iterations` (1).
    pub iterations: u64,
    /// `agent_erase_skip_read_only` (false).
    pub skip_read_only: bool,
    /// `disk_erasure_concurrency` (1).
    pub concurrency: usize,
    /// `wipe_special_filesystems` (true): the protected-filesystem guard is on.
    pub guard: bool,
}

impl EraseFlags {
    /// Reads the flags from the node's `driver_internal_info`.
    pub fn from_node(node: &Value, guard_config: bool) -> Self {
        let info = node
            .get("driver_internal_info")
            .cloned()
            .unwrap_or(Value::Null);
        let flag = |name: &str, default: bool| match info.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
            }
            _ => default,
        };
        let number = |name: &str, default: u64| match info.get(name) {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(default),
            Some(Value::String(s)) => s.parse().unwrap_or(default),
            _ => default,
        };
        Self {
            nvme_secure_erase: flag("agent_enable_nvme_secure_erase", true),
            ata_secure_erase: flag("agent_enable_ata_secure_erase", true),
            continue_if_secure_erase_failed: flag("agent_continue_if_secure_erase_failed", false)
                || flag("agent_continue_if_ata_erase_failed", false),
            zeroize: flag("agent_erase_devices_zeroize", true),
            iterations: number("agent_erase_devices_iterations", 1),
            skip_read_only: flag("agent_erase_skip_read_only", false),
            concurrency: number("disk_erasure_concurrency", 1).max(1) as usize,
            guard: guard_config && flag("wipe_special_filesystems", true),
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

async fn run_checked(env: &StepEnv, spec: CommandSpec) -> Result<CommandOutput, String> {
    let line = spec.to_string();
    let out = env
        .runner
        .run(spec)
        .await
        .map_err(|err| format!("{line}: {err}"))?;
    if out.success() {
        Ok(out)
    } else {
        Err(format!(
            "{line} failed with {}: {}",
            out.describe_exit(),
            out.stderr.trim()
        ))
    }
}

/// Erases the metadata of one device: `wipefs --force --all`, zeroes of the first
/// and last 33 sectors (5 on 4 KiB sectors) with direct I/O, `sgdisk -Z` if present.
pub async fn erase_metadata_of(env: &StepEnv, dev: &BlockDev) -> Result<(), String> {
    disks::check_allowed(&env.allowlist, &dev.path).map_err(|err| err.to_string())?;
    let path = display(&dev.path);
    run_checked(env, CommandSpec::new("wipefs", ["--force", "--all", &path])).await?;
    let sectors = if dev.logical_sector >= 4096 { 5 } else { 33 };
    let sector_size = dev.logical_sector.max(512);
    let target = dev.path.clone();
    tokio::task::spawn_blocking(move || disks::zero_ends(&target, sector_size, sectors))
        .await
        .map_err(|err| format!("zeroing {path}: {err}"))?
        .map_err(|err| format!("zeroing the first and last {sectors} sectors of {path}: {err}"))?;
    match env
        .runner
        .run(CommandSpec::new("sgdisk", ["-Z", &path]))
        .await
    {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(format!(
            "sgdisk -Z {path} failed with {}: {}",
            out.describe_exit(),
            out.stderr.trim()
        )),
        // IPA runs sgdisk only when it is installed.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(format!("sgdisk -Z {path}: {err}")),
    }
}

/// `erase_devices_metadata`.
pub async fn erase_devices_metadata(env: &StepEnv) -> Result<Value, AgentError> {
    let mut devices = disks::list_devices(env.runner.as_ref(), &env.allowlist, true)
        .await
        .map_err(|err| failures::block_device_erase(format!("listing block devices: {err}")))?;
    devices.sort_by(|a, b| b.path.cmp(&a.path));
    let in_use = in_use(env);
    let mut errors = Vec::new();
    for dev in &devices {
        if is_in_use(dev, &in_use) {
            tracing::warn!(device = %dev.path.display(), "skipping a device with a mounted file system");
            continue;
        }
        if dev.is_virtual_media() {
            tracing::info!(device = %dev.path.display(), "skipping the virtual media device");
            continue;
        }
        if dev.is_raid() {
            tracing::info!(device = %dev.path.display(), "skipping a software RAID device or member");
            continue;
        }
        if dev.read_only {
            tracing::info!(device = %dev.path.display(), "skipping a read-only device");
            continue;
        }
        tracing::info!(device = %dev.path.display(), "erasing metadata");
        if let Err(err) = erase_metadata_of(env, dev).await {
            tracing::error!(device = %dev.path.display(), error = %err, "metadata erase failed");
            errors.push(format!("{}: {err}", dev.path.display()));
        }
    }
    if errors.is_empty() {
        Ok(Value::Null)
    } else {
        Err(failures::block_device_erase(format!(
            "Failed to erase the metadata on the device(s): {}",
            errors.join("; ")
        )))
    }
}

/// Kernel names of the disks backing a mounted file system of this system (the
/// machine's own disks, `host::disks_in_use`): never erased.
fn in_use(env: &StepEnv) -> BTreeSet<String> {
    crate::host::disks_in_use(&env.config.paths.proc_root, &env.config.paths.sys_root)
}

/// Whether `dev` is such a disk or a partition of one.
fn is_in_use(dev: &BlockDev, in_use: &BTreeSet<String>) -> bool {
    in_use.contains(&dev.name()) || dev.parent.as_ref().is_some_and(|p| in_use.contains(p))
}

/// The protected-filesystem guard: GPFS, VMFS (GPT and MBR) and gfs2 on the
/// device or any of its partitions.
pub fn protected_reason(dev: &BlockDev, all: &[BlockDev]) -> Option<String> {
    let name = dev.name();
    let family = all
        .iter()
        .filter(|d| d.path == dev.path || d.parent.as_deref() == Some(name.as_str()));
    for d in family {
        let parttype = d.parttype.as_deref().unwrap_or("").to_ascii_lowercase();
        let what = if parttype == GPFS_GUID {
            Some("an IBM GPFS partition")
        } else if parttype == VMFS_GUID || parttype == VMFS_MBR {
            Some("a VMware VMFS partition")
        } else if d.fstype.as_deref() == Some("gfs2") {
            Some("a Red Hat GFS2 file system")
        } else {
            None
        };
        if let Some(what) = what {
            return Some(format!("{} with {what}", d.path.display()));
        }
    }
    None
}

/// Whether `nvme id-ctrl` says crypto erase is supported (FNA bit 2).
fn nvme_crypto_supported(id_ctrl_json: &str) -> bool {
    serde_json::from_str::<Value>(id_ctrl_json)
        .ok()
        .and_then(|v| v.get("fna").and_then(Value::as_u64))
        .is_some_and(|fna| fna & 0x4 != 0)
}

/// NVMe secure erase: `nvme format <dev> -s 2 -f` (crypto) or `-s 1` (user data).
pub async fn nvme_erase(env: &StepEnv, dev: &BlockDev) -> Result<(), String> {
    let path = display(&dev.path);
    let id = run_checked(
        env,
        CommandSpec::new("nvme", ["id-ctrl", &path, "-o", "json"]),
    )
    .await?;
    let mode = if nvme_crypto_supported(&id.stdout) {
        "2"
    } else {
        "1"
    };
    run_checked(
        env,
        CommandSpec::new("nvme", ["format", &path, "-s", mode, "-f"]),
    )
    .await?;
    Ok(())
}

fn security_section(hdparm_i: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in hdparm_i.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Security:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with('\t') && !line.starts_with(' ') && !trimmed.is_empty() {
                break;
            }
            if !trimmed.is_empty() {
                lines.push(trimmed.to_ascii_lowercase());
            }
        }
    }
    lines
}

/// ATA secure erase through hdparm, as IPA: check support and "not frozen",
/// set the NULL password, erase (enhanced when supported), check it cleared.
/// `Ok(false)` when the drive does not support it at all.
pub async fn ata_erase(env: &StepEnv, dev: &BlockDev) -> Result<bool, String> {
    let path = display(&dev.path);
    // A drive hdparm cannot identify (virtio, loop, no hdparm) does not support it.
    let Ok(info) = run_checked(env, CommandSpec::new("hdparm", ["-I", &path])).await else {
        return Ok(false);
    };
    let security = security_section(&info.stdout);
    if security.is_empty()
        || security
            .iter()
            .any(|l| l == "not\tsupported" || l == "not supported")
    {
        return Ok(false);
    }
    let has = |text: &str| security.iter().any(|l| l.replace('\t', " ") == text);
    if has("enabled") && !has("not enabled") {
        // A previous erase left a password: try to unlock with the NULL password.
        run_checked(
            env,
            CommandSpec::new(
                "hdparm",
                ["--user-master", "u", "--security-unlock", "NULL", &path],
            ),
        )
        .await?;
    }
    if !has("not frozen") {
        return Err(format!(
            "Block device {path} is frozen and cannot be ATA secure erased"
        ));
    }
    run_checked(
        env,
        CommandSpec::new(
            "hdparm",
            ["--user-master", "u", "--security-set-pass", "NULL", &path],
        ),
    )
    .await?;
    let erase = if security
        .iter()
        .any(|l| l.replace('\t', " ").contains("supported: enhanced erase") && !l.contains("not"))
    {
        "--security-erase-enhanced"
    } else {
        "--security-erase"
    };
    run_checked(
        env,
        CommandSpec::new("hdparm", ["--user-master", "u", erase, "NULL", &path]),
    )
    .await?;
    let after = run_checked(env, CommandSpec::new("hdparm", ["-I", &path])).await?;
    let after = security_section(&after.stdout);
    if after.iter().any(|l| l.replace('\t', " ") == "not enabled") {
        Ok(true)
    } else {
        Err(format!(
            "ATA secure erase of {path} left the security password enabled"
        ))
    }
}

/// `shred --force [--zero] --verbose --iterations N <dev>`.
pub async fn shred(env: &StepEnv, dev: &BlockDev, flags: &EraseFlags) -> Result<(), String> {
    let path = display(&dev.path);
    let mut args = vec!["--force".to_string()];
    if flags.zeroize {
        args.push("--zero".into());
    }
    args.extend([
        "--verbose".to_string(),
        "--iterations".into(),
        flags.iterations.to_string(),
        path,
    ]);
    run_checked(env, CommandSpec::new("shred", args)).await?;
    Ok(())
}

/// IPA's `erase_block_device`: NVMe format, ATA secure erase, then shred.
pub async fn erase_block_device(
    env: &StepEnv,
    dev: &BlockDev,
    flags: &EraseFlags,
) -> Result<(), String> {
    disks::check_allowed(&env.allowlist, &dev.path).map_err(|err| err.to_string())?;
    let name = dev.name();
    let secure = if name.starts_with("nvme") && flags.nvme_secure_erase {
        Some(nvme_erase(env, dev).await.map(|()| true))
    } else if !name.starts_with("nvme") && flags.ata_secure_erase {
        Some(ata_erase(env, dev).await)
    } else {
        None
    };
    match secure {
        Some(Ok(true)) => return Ok(()),
        Some(Ok(false)) | None => {}
        Some(Err(err)) if flags.continue_if_secure_erase_failed => {
            tracing::warn!(device = %dev.path.display(), error = %err,
                "secure erase failed; falling back to shred as the node allows");
        }
        Some(Err(err)) => return Err(err),
    }
    shred(env, dev, flags).await
}

/// `erase_devices` (and `erase_devices_express` with `express`: NVMe secure erase
/// where possible, metadata erase for the rest).
pub async fn erase_devices(
    env: &StepEnv,
    node: &Value,
    express: bool,
) -> Result<Value, AgentError> {
    let flags = EraseFlags::from_node(node, env.config.guard_special_filesystems);
    let all = disks::list_devices(env.runner.as_ref(), &env.allowlist, true)
        .await
        .map_err(|err| failures::block_device_erase(format!("listing block devices: {err}")))?;
    let in_use = in_use(env);
    let mut targets = Vec::new();
    for dev in all.iter().filter(|d| d.is_disk()) {
        if dev.is_virtual_media() || dev.is_raid() {
            continue;
        }
        if is_in_use(dev, &in_use) {
            tracing::warn!(device = %dev.path.display(), "skipping a disk with a mounted file system");
            continue;
        }
        if dev.read_only {
            if flags.skip_read_only {
                tracing::info!(device = %dev.path.display(), "skipping a read-only device");
                continue;
            }
            return Err(failures::block_device_erase(format!(
                "Failed to erase {}: the device is read-only (set agent_erase_skip_read_only to skip it)",
                dev.path.display()
            )));
        }
        if flags.guard {
            if let Some(reason) = protected_reason(dev, &all) {
                return Err(failures::protected_device(
                    &dev.path.display().to_string(),
                    &reason,
                ));
            }
        }
        targets.push(dev.clone());
    }
    let total: u64 = targets.iter().map(|d| d.size).sum();
    env.progress
        .start(format!("erasing {} device(s)", targets.len()), Some(total));
    let done = &std::sync::atomic::AtomicU64::new(0);
    let results: Vec<(String, Result<(), String>)> = stream::iter(targets)
        .map(|dev| {
            let flags = flags.clone();
            async move {
                let result = if express {
                    if dev.name().starts_with("nvme") {
                        nvme_erase(env, &dev).await
                    } else {
                        erase_metadata_of(env, &dev).await
                    }
                } else {
                    erase_block_device(env, &dev, &flags).await
                };
                let finished = done.fetch_add(dev.size, std::sync::atomic::Ordering::SeqCst);
                env.progress.update(finished + dev.size);
                (dev.path.display().to_string(), result)
            }
        })
        .buffer_unordered(flags.concurrency)
        .collect()
        .await;
    env.progress.finish();
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (path, result) in results {
        if let Err(err) = result {
            errors.push(format!("{path}: {err}"));
        }
        out.insert(path, Value::Null);
    }
    if !errors.is_empty() {
        errors.sort();
        return Err(failures::block_device_erase(format!(
            "Failed to erase the device(s): {}",
            errors.join("; ")
        )));
    }
    Ok(if express {
        Value::Null
    } else {
        Value::Object(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dev(
        name: &str,
        parttype: Option<&str>,
        fstype: Option<&str>,
        parent: Option<&str>,
    ) -> BlockDev {
        BlockDev {
            path: format!("/dev/{name}").into(),
            kind: if parent.is_some() { "part" } else { "disk" }.into(),
            parttype: parttype.map(str::to_string),
            fstype: fstype.map(str::to_string),
            parent: parent.map(str::to_string),
            logical_sector: 512,
            ..BlockDev::default()
        }
    }

    #[test]
    fn protected_filesystems_are_found_on_partitions() {
        let sda = dev("sda", None, None, None);
        for (pt, fs) in [
            (Some("37AFFC90-EF7D-4E96-91C3-2D7AE055B174"), None),
            (Some("AA31E02A-400F-11DB-9590-000C2911D1B8"), None),
            (Some("0xfb"), None),
            (None, Some("gfs2")),
        ] {
            let all = vec![sda.clone(), dev("sda1", pt, fs, Some("sda"))];
            assert!(protected_reason(&sda, &all).is_some(), "{pt:?} {fs:?}");
        }
        let all = vec![
            sda.clone(),
            dev("sda1", Some("0x83"), Some("ext4"), Some("sda")),
        ];
        assert!(protected_reason(&sda, &all).is_none());
    }

    #[test]
    fn flags_follow_driver_internal_info() {
        let f = EraseFlags::from_node(&json!({}), true);
        assert!(f.nvme_secure_erase && f.ata_secure_erase && f.zeroize && f.guard);
        assert_eq!((f.iterations, f.concurrency), (1, 1));
        let f = EraseFlags::from_node(
            &json!({"driver_internal_info": {"agent_erase_devices_zeroize": false,
                "agent_continue_if_ata_erase_failed": true, "disk_erasure_concurrency": 4,
                "agent_erase_devices_iterations": "2", "wipe_special_filesystems": false}}),
            true,
        );
        assert!(!f.zeroize && f.continue_if_secure_erase_failed && !f.guard);
        assert_eq!((f.iterations, f.concurrency), (2, 4));
    }

    #[test]
    fn nvme_crypto_support_comes_from_fna_bit_2() {
        assert!(nvme_crypto_supported(r#"{"fna": 4}"#));
        assert!(!nvme_crypto_supported(r#"{"fna": 0}"#));
        assert!(!nvme_crypto_supported("garbage"));
    }
}
