//! `erase_pstore`, `clean_uefi_nvram`, `image.install_bootloader` and
//! `execute_bootc_install`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::failures;
use super::steps::StepEnv;
use crate::errors::AgentError;
use crate::host::CommandSpec;

/// IPA's default `match_patterns` of `clean_uefi_nvram`.
pub const DEFAULT_NVRAM_PATTERNS: [&str; 3] = [r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"];

/// The pstore mount point from `<proc>/mounts`, if any.
pub fn pstore_path(proc_root: &Path) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string(proc_root.join("mounts")).ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_src, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "pstore").then(|| PathBuf::from(target))
    })
}

/// `erase_pstore`: deletes every entry of the mounted pstore file system.
pub async fn erase_pstore(env: &StepEnv) -> Result<Value, AgentError> {
    let Some(path) = pstore_path(&env.config.paths.proc_root) else {
        tracing::warn!("no pstore file system is mounted; nothing to erase");
        return Ok(Value::Null);
    };
    let entries = std::fs::read_dir(&path).map_err(|err| {
        AgentError::execution(format!("reading pstore {}: {err}", path.display()))
    })?;
    for entry in entries.flatten() {
        let p = entry.path();
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(|err| {
            AgentError::execution(format!("removing pstore entry {}: {err}", p.display()))
        })?;
    }
    tracing::info!(path = %path.display(), "pstore erased");
    Ok(Value::Null)
}

/// A boot entry of `efibootmgr -v`: (number, whole line).
pub fn boot_entries(efibootmgr_v: &str) -> Vec<(String, String)> {
    efibootmgr_v
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Boot")?;
            let number = rest.get(..4)?;
            (number.chars().all(|c| c.is_ascii_hexdigit()) && rest[4..].starts_with(['*', ' ']))
                .then(|| {
                    (
                        number.to_string(),
                        rest[4..].trim_start_matches(['*', ' ']).to_string(),
                    )
                })
        })
        .collect()
}

/// `clean_uefi_nvram`: deletes the UEFI boot entries matching `match_patterns`.
pub async fn clean_uefi_nvram(
    env: &StepEnv,
    args: &Map<String, Value>,
) -> Result<Value, AgentError> {
    if !env.config.paths.sys_root.join("firmware/efi").exists() {
        tracing::warn!("not booted in UEFI mode; no NVRAM entries to clean");
        return Ok(Value::Null);
    }
    let patterns: Vec<String> = match args.get("match_patterns").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None => DEFAULT_NVRAM_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let regexes = patterns
        .iter()
        .map(|p| regex_lite::Regex::new(&format!("(?i){p}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| AgentError::invalid_params(format!("match_patterns: {err}")))?;
    let out = env
        .runner
        .run(CommandSpec::new("efibootmgr", ["-v"]))
        .await
        .map_err(|err| AgentError::execution(format!("efibootmgr -v: {err}")))?;
    if !out.success() {
        return Err(AgentError::execution(format!(
            "efibootmgr -v failed with {}: {}",
            out.describe_exit(),
            out.stderr.trim()
        )));
    }
    for (number, text) in boot_entries(&out.stdout) {
        if regexes.iter().any(|re| re.is_match(&text)) {
            tracing::info!(entry = %number, "deleting UEFI boot entry {text}");
            let del = env
                .runner
                .run(CommandSpec::new("efibootmgr", ["-b", &number, "-B"]))
                .await
                .map_err(|err| {
                    AgentError::execution(format!("efibootmgr -b {number} -B: {err}"))
                })?;
            if !del.success() {
                return Err(AgentError::execution(format!(
                    "efibootmgr -b {number} -B failed: {}",
                    del.stderr.trim()
                )));
            }
        }
    }
    Ok(Value::Null)
}

/// `image.install_bootloader`: whole-disk images (root UUID null, `0x00000000`
/// or an MBR signature) bring their own boot loader; partition images are not
/// written by this agent, so anything else is an error unless ignored.
pub async fn install_bootloader(
    env: &StepEnv,
    args: &Map<String, Value>,
) -> Result<Value, AgentError> {
    let root_uuid = args.get("root_uuid").and_then(Value::as_str).unwrap_or("");
    if root_uuid.is_empty() || root_uuid == "0x00000000" || root_uuid.starts_with("0x") {
        tracing::info!(root_uuid, "whole-disk image: its own boot loader is used");
        return Ok(Value::Null);
    }
    let ignore = args
        .get("ignore_bootloader_failure")
        .and_then(Value::as_bool)
        .or(env.config.ignore_bootloader_failure)
        .unwrap_or(false);
    let err = AgentError::new(
        "InstallBootloaderError",
        500,
        "Installing the boot loader failed",
        "boot loader installation for partition images is not implemented in this agent",
    );
    if ignore {
        tracing::warn!("{}; ignored (ignore_bootloader_failure)", err.details);
        Ok(Value::Null)
    } else {
        Err(err)
    }
}

/// `execute_bootc_install`: installs a bootable container image to the install
/// device with `bootc install to-disk` run by the host's podman.
pub async fn execute_bootc_install(
    env: &StepEnv,
    args: &Map<String, Value>,
    install_device: Option<&str>,
) -> Result<String, AgentError> {
    if env.config.disable_bootc_deploy {
        return Err(AgentError::execution(
            "bootc deployments are disabled (disable_bootc_deploy)",
        ));
    }
    let source = args
        .get("image_source")
        .and_then(Value::as_str)
        .ok_or_else(|| AgentError::invalid_params("image_source is required"))?;
    let device = super::image::install_target(env, install_device).await?;
    let dev = device.path.display().to_string();
    let secret = args
        .get("pull_secret")
        .or_else(|| args.get("oci_pull_secret"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mut podman = vec![
        "run".to_string(),
        "--rm".into(),
        "--privileged".into(),
        "--pid=host".into(),
        "--security-opt".into(),
        "label=type:unconfined_t".into(),
        "-v".into(),
        "/dev:/dev".into(),
        "-v".into(),
        "/var/lib/containers:/var/lib/containers".into(),
    ];
    let auth_dir = tempfile_dir()?;
    if let Some(secret) = secret {
        let auth = auth_dir.join("auth.json");
        std::fs::write(&auth, secret)
            .map_err(|e| AgentError::execution(format!("writing the pull secret: {e}")))?;
        podman.extend(["--authfile".into(), auth.display().to_string()]);
    }
    podman.extend([
        source.to_string(),
        "bootc".into(),
        "install".into(),
        "to-disk".into(),
        "--wipe".into(),
        dev.clone(),
    ]);
    let result = env.runner.run(CommandSpec::new("podman", podman)).await;
    let _ = std::fs::remove_dir_all(&auth_dir);
    let out = match result {
        Ok(out) => out,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(AgentError::execution(
                "bootc install needs podman on this host, and it was not found",
            ))
        }
        Err(err) => return Err(AgentError::execution(format!("podman: {err}"))),
    };
    if !out.success() {
        return Err(failures::image_write(
            &dev,
            format!(
                "bootc install failed with {}: {}",
                out.describe_exit(),
                out.stderr.trim()
            ),
        ));
    }
    Ok(format!(
        "Container image ({source}) written to device {dev}"
    ))
}

fn tempfile_dir() -> Result<PathBuf, AgentError> {
    let dir = std::env::temp_dir().join(format!("ironic-agent-bootc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| AgentError::execution(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_efibootmgr_entries() {
        let text = "BootCurrent: 0001\nBootOrder: 0001,0000\nBoot0000* UiApp\tFvVol(7cb8bdc9)\nBoot0001* Fedora\tHD(1,GPT,abc)/File(\\EFI\\fedora\\shimx64.efi)\nBoot000A  Off\tPciRoot(0x0)\n";
        let entries = boot_entries(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].0, "0001");
        assert!(entries[1].1.starts_with("Fedora"));
        assert_eq!(entries[2].0, "000A");
    }

    #[test]
    fn finds_the_pstore_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mounts"),
            "proc /proc proc rw 0 0\npstore /sys/fs/pstore pstore rw 0 0\n",
        )
        .expect("mounts");
        assert_eq!(
            pstore_path(dir.path()),
            Some(PathBuf::from("/sys/fs/pstore"))
        );
    }
}
