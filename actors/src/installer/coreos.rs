//! `install_coreos`: the CoreOS hardware manager's install, as plain logic.
//!
//! Behaviour follows `deployment-contract.md` ("The CoreOS hardware manager's
//! behaviour"): the configdrive is read from the cached node, the Ignition gets a
//! firstboot `/etc/hostname`, and `chroot <host root> coreos-installer install … <device>`
//! runs (streamed, up to three attempts). Afterwards the partitions are re-scanned and, on
//! UEFI machines, a boot entry is created with `efibootmgr` in the host root.
//!
//! The hardware-manager side (step registration, install-device selection, RAID removal)
//! lives elsewhere and sends a [`CoreosInstallRequest`] to the installer runner.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::command::CommandProgress;
use crate::config::{AgentConfig, CoreosEnv};
use crate::errors::{AgentError, StepKind};
use crate::host::{CommandRunner, CommandSpec, DeviceAllowlist, ProcessRunner};
use crate::installer::process::run_streaming;

/// Where the Ignition is written, as seen inside the host root.
pub const IGNITION_PATH_IN_ROOT: &str = "/tmp/ironic.ign";
/// How often coreos-installer is tried before the step fails.
pub const INSTALL_ATTEMPTS: u32 = 3;
/// How often the UEFI boot entry is tried before the step fails.
pub const UEFI_ATTEMPTS: u32 = 6;
/// The pause between two UEFI attempts (Red Hat bug 2057668).
pub const UEFI_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The label of the boot entry created on UEFI machines (IPA's default label).
pub const UEFI_LABEL: &str = "ironic1";
/// The empty Ignition a firstboot hostname is added to.
pub const EMPTY_IGNITION_VERSION: &str = "3.0.0";
/// Directories, relative to the host root, where `coreos-installer` is looked for.
const HOST_BIN_DIRS: [&str; 6] = [
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
];
/// The GPT type GUID of an EFI system partition, in on-disk byte order.
const ESP_TYPE_GUID: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
/// What Python's `urllib.parse.quote` keeps unescaped: alphanumerics, `_.-~` and `/`.
const QUOTE_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// Request: install the running CoreOS onto `device` with coreos-installer.
#[derive(Debug, Default)]
pub struct CoreosInstallRequest {
    /// The install device (the OS install device chosen by root-device hints).
    pub device: PathBuf,
    /// The cached node: `instance_info.configdrive`, `instance_info.image_source`.
    pub node: Value,
    /// The host's current hostname, written to the installed system's `/etc/hostname`.
    pub hostname: Option<String>,
    /// Receives the installer's progress (bytes read, last line) while it runs.
    pub progress: Option<watch::Sender<CommandProgress>>,
}

impl CoreosInstallRequest {
    /// A request without a progress channel.
    pub fn new(device: impl Into<PathBuf>, node: Value, hostname: Option<String>) -> Self {
        Self {
            device: device.into(),
            node,
            hostname,
            progress: None,
        }
    }

    /// Adds a progress channel and returns its receiving end.
    pub fn watch_progress(&mut self) -> watch::Receiver<CommandProgress> {
        let (tx, rx) = watch::channel(CommandProgress::default());
        self.progress = Some(tx);
        rx
    }
}

/// What a successful install did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreosInstallOutcome {
    /// The device installed onto.
    pub device: PathBuf,
    /// The full command that succeeded (`chroot <root> coreos-installer install …`).
    pub argv: Vec<String>,
    /// Which attempt succeeded (1-based).
    pub attempts: u32,
    /// Whether an Ignition file was written and passed.
    pub ignition: bool,
    /// The last non-empty installer line (normally `Install complete.`).
    pub last_line: Option<String>,
    /// The UEFI boot entry, when the machine booted in UEFI mode.
    pub uefi: Option<UefiBootEntry>,
}

/// A UEFI boot entry created for the installed disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UefiBootEntry {
    /// The EFI system partition's number on the device.
    pub partition: u32,
    /// The loader path passed to `efibootmgr -l`.
    pub loader: String,
    /// The entry's label.
    pub label: String,
    /// Which attempt succeeded (1-based).
    pub attempts: u32,
}

/// The arguments and Ignition derived from the node and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    /// `coreos-installer install` arguments, without the device.
    pub args: Vec<String>,
    /// The Ignition text to write to `<host root>/tmp/ironic.ign`, if any.
    pub ignition: Option<String>,
}

fn deploy_error(details: impl Into<String>) -> AgentError {
    AgentError::step_failed(StepKind::Deploy, details)
}

/// Python truthiness of a JSON value (`if value:`).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The firstboot `/etc/hostname` entry: mode 0644, overwritten, URL-quoted data URL.
pub fn hostname_file_entry(hostname: &str) -> Value {
    json!({
        "path": "/etc/hostname",
        "mode": 420,
        "overwrite": true,
        "contents": {
            "source": format!("data:,{}", utf8_percent_encode(hostname, QUOTE_SAFE)),
        },
    })
}

/// Adds the firstboot hostname to an Ignition (`user_data`, a string or an object).
///
/// Without a hostname the Ignition is returned unchanged (`None` when it is empty). With
/// one, an empty Ignition becomes `{"ignition": {"version": "3.0.0"}}` first, and a string
/// must be JSON.
pub fn ignition_with_hostname(
    user_data: Option<&Value>,
    hostname: Option<&str>,
) -> Result<Option<String>, AgentError> {
    let user_data = user_data.filter(|value| truthy(value));
    let Some(hostname) = hostname.filter(|h| !h.is_empty()) else {
        return Ok(match user_data {
            None => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        });
    };
    let mut ignition = match user_data {
        None => json!({"ignition": {"version": EMPTY_IGNITION_VERSION}}),
        Some(Value::String(text)) => serde_json::from_str(text).map_err(|err| {
            deploy_error(format!(
                "configdrive user_data is not a JSON Ignition config: {err}"
            ))
        })?,
        Some(other) => other.clone(),
    };
    let Some(root) = ignition.as_object_mut() else {
        return Err(deploy_error(
            "configdrive user_data is not a JSON object (an Ignition config)",
        ));
    };
    let storage = root
        .entry("storage")
        .or_insert_with(|| Value::Object(Map::new()));
    if storage.is_null() {
        *storage = Value::Object(Map::new());
    }
    let Some(storage) = storage.as_object_mut() else {
        return Err(deploy_error("Ignition storage is not an object"));
    };
    let files = storage
        .entry("files")
        .or_insert_with(|| Value::Array(Vec::new()));
    if files.is_null() {
        *files = Value::Array(Vec::new());
    }
    let Some(files) = files.as_array_mut() else {
        return Err(deploy_error("Ignition storage.files is not a list"));
    };
    files.push(hostname_file_entry(hostname));
    Ok(Some(ignition.to_string()))
}

/// Derives the installer arguments and the Ignition from the cached node.
pub fn plan_install(
    node: &Value,
    hostname: Option<&str>,
    env: &CoreosEnv,
) -> Result<InstallPlan, AgentError> {
    let instance_info = node.get("instance_info").unwrap_or(&Value::Null);
    let configdrive = instance_info
        .get("configdrive")
        .filter(|value| truthy(value))
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let configdrive = match configdrive {
        Value::Object(map) => map,
        Value::String(_) => {
            return Err(deploy_error(
                "Cannot use a pre-rendered configdrive, please pass it as JSON data",
            ))
        }
        other => {
            return Err(deploy_error(format!(
                "The configdrive must be a JSON object with meta_data and user_data, got {other}"
            )))
        }
    };
    let meta_data = match configdrive.get("meta_data") {
        Some(Value::Object(map)) => map.clone(),
        Some(value) if truthy(value) => {
            return Err(deploy_error("configdrive meta_data must be a JSON object"))
        }
        _ => Map::new(),
    };
    let ignition = ignition_with_hostname(configdrive.get("user_data"), hostname)?;

    let mut args = vec!["--preserve-on-error".to_string()];
    if ignition.is_some() {
        args.extend(["--ignition-file".to_string(), IGNITION_PATH_IN_ROOT.into()]);
    }
    match meta_data.get("coreos_append_karg") {
        Some(Value::Array(kargs)) if !kargs.is_empty() => {
            let joined: Vec<String> = kargs
                .iter()
                .map(|karg| match karg {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            args.extend(["--append-karg".to_string(), joined.join(",")]);
        }
        Some(Value::String(karg)) if !karg.is_empty() => {
            args.extend(["--append-karg".to_string(), karg.clone()]);
        }
        _ => {}
    }
    match instance_info.get("image_source") {
        Some(Value::String(url)) if !url.is_empty() => {
            args.extend(["--image-url".to_string(), url.clone(), "--insecure".into()]);
        }
        _ => args.push("--offline".to_string()),
    }
    if let Some(ip_options) = env.ip_options.as_deref().filter(|v| !v.is_empty()) {
        args.extend(["--append-karg".to_string(), ip_options.to_string()]);
    }
    let copy_network = match meta_data.get("coreos_copy_network") {
        Some(value) => truthy(value),
        None => env.copy_network_enabled(),
    };
    if copy_network {
        args.push("--copy-network".to_string());
    }
    Ok(InstallPlan { args, ignition })
}

/// Parses a coreos-installer progress line into bytes done and total.
///
/// The installer prints `Read <artifact> <done>/<total> (<N>%)` (or `Read <artifact>
/// <done>` when the length is unknown), sizes like `26.0 KiB`; on a terminal the line is
/// prefixed with `> ` and redrawn with `\r`.
pub fn parse_progress(line: &str) -> Option<(u64, Option<u64>)> {
    let line = line.trim();
    let line = line.strip_prefix("> ").unwrap_or(line).trim();
    let rest = line.strip_prefix("Read ")?;
    let (_artifact, sizes) = rest.split_once(' ')?;
    let sizes = match sizes.rfind(" (") {
        Some(at) if sizes.ends_with("%)") => &sizes[..at],
        _ => sizes,
    };
    match sizes.split_once('/') {
        Some((done, total)) => Some((parse_size(done)?, Some(parse_size(total)?))),
        None => Some((parse_size(sizes)?, None)),
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    let number: f64 = words.next()?.parse().ok()?;
    let unit: f64 = match words.next().unwrap_or("B") {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    if words.next().is_some() || number < 0.0 {
        return None;
    }
    Some((number * unit).round() as u64)
}

/// Finds the EFI system partition on a GPT disk (or disk image): its 1-based number.
pub fn find_esp_partition(device: &Path) -> io::Result<Option<u32>> {
    let mut disk = std::fs::File::open(device)?;
    for sector in [512u64, 4096] {
        let mut header = [0u8; 92];
        if disk.seek(SeekFrom::Start(sector)).is_err() || disk.read_exact(&mut header).is_err() {
            continue;
        }
        if &header[0..8] != b"EFI PART" {
            continue;
        }
        let entries_lba = u64::from_le_bytes(header[72..80].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(header[80..84].try_into().expect("4 bytes"));
        let size = u32::from_le_bytes(header[84..88].try_into().expect("4 bytes"));
        if size < 128 || count > 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "implausible GPT header",
            ));
        }
        disk.seek(SeekFrom::Start(entries_lba * sector))?;
        let mut entry = vec![0u8; size as usize];
        for index in 0..count {
            disk.read_exact(&mut entry)?;
            if entry[0..16] == ESP_TYPE_GUID {
                return Ok(Some(index + 1));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// The removable-media loader path of this architecture (`\EFI\BOOT\BOOTX64.EFI`).
pub fn fallback_loader() -> String {
    let name = match std::env::consts::ARCH {
        "aarch64" => "BOOTAA64.EFI",
        "x86" => "BOOTIA32.EFI",
        "riscv64" => "BOOTRISCV64.EFI",
        _ => "BOOTX64.EFI",
    };
    format!("\\EFI\\BOOT\\{name}")
}

/// Entry numbers (`XXXX` of `BootXXXX`) whose label is `label`, from `efibootmgr` output.
pub fn entries_labelled(listing: &str, label: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Boot")?;
            let number = rest.get(0..4)?;
            if !number.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let title = rest[4..].trim_start_matches('*').trim_start();
            let title = title.split('\t').next().unwrap_or("").trim_end();
            (title == label).then(|| number.to_string())
        })
        .collect()
}

/// Runs coreos-installer and the UEFI configuration. Shared by the actor and tests.
#[derive(Debug, Clone)]
pub struct CoreosInstaller {
    /// The agent configuration (host paths, allow-list, CoreOS environment).
    pub config: AgentConfig,
    /// Runs the short commands (re-scan, efibootmgr).
    pub runner: Arc<dyn CommandRunner>,
    /// Builds the streamed coreos-installer process (PATH additions).
    pub process: ProcessRunner,
    /// Extra environment for coreos-installer (tests pass `SHIM_PARTX_DEVICES`).
    pub installer_env: BTreeMap<String, String>,
    /// Attempts of coreos-installer.
    pub install_attempts: u32,
    /// Attempts of the UEFI boot entry.
    pub uefi_attempts: u32,
    /// Pause between UEFI attempts.
    pub uefi_retry_delay: Duration,
}

impl CoreosInstaller {
    /// An installer with the contract's attempt counts and delays.
    pub fn new(config: AgentConfig, runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            config,
            runner,
            process: ProcessRunner::default(),
            installer_env: BTreeMap::new(),
            install_attempts: INSTALL_ATTEMPTS,
            uefi_attempts: UEFI_ATTEMPTS,
            uefi_retry_delay: UEFI_RETRY_DELAY,
        }
    }

    fn host_root(&self) -> &Path {
        &self.config.paths.host_root
    }

    /// Whether `coreos-installer` exists in one of the host root's binary directories.
    pub fn installer_present(&self) -> bool {
        HOST_BIN_DIRS.iter().any(|dir| {
            std::fs::symlink_metadata(self.host_root().join(dir).join("coreos-installer")).is_ok()
        })
    }

    fn missing_installer(&self) -> AgentError {
        deploy_error(format!(
            "Cannot run coreos-installer, is it installed in {}?",
            self.host_root().display()
        ))
    }

    /// Whether the machine booted in UEFI mode (`<sys>/firmware/efi` exists).
    pub fn booted_uefi(&self) -> bool {
        self.config.paths.sys_root.join("firmware/efi").exists()
    }

    /// Installs CoreOS as the request says. `cancel` kills a running installer when it
    /// changes; the step then fails without further attempts.
    pub async fn install(
        &self,
        request: CoreosInstallRequest,
        cancel: Option<watch::Receiver<u64>>,
    ) -> Result<CoreosInstallOutcome, AgentError> {
        let device = request.device.clone();
        let span = tracing::info_span!("install_coreos", device = %device.display());
        self.install_inner(request, cancel).instrument(span).await
    }

    async fn install_inner(
        &self,
        request: CoreosInstallRequest,
        cancel: Option<watch::Receiver<u64>>,
    ) -> Result<CoreosInstallOutcome, AgentError> {
        let device = request.device;
        let allowlist = DeviceAllowlist::new(&self.config.block_device_allowlist);
        if !allowlist.permits(&device) {
            return Err(deploy_error(format!(
                "Refusing to install onto {}: it is not in block_device_allowlist",
                device.display()
            )));
        }
        let plan = plan_install(
            &request.node,
            request.hostname.as_deref(),
            &self.config.coreos,
        )?;
        if !self.installer_present() {
            return Err(self.missing_installer());
        }
        if let Some(ignition) = &plan.ignition {
            self.write_ignition(ignition).map_err(|err| {
                deploy_error(format!(
                    "Cannot write the Ignition to {}{IGNITION_PATH_IN_ROOT}: {err}",
                    self.host_root().display()
                ))
            })?;
        }
        let mut args = vec!["install".to_string()];
        args.extend(plan.args.iter().cloned());
        args.push(device.display().to_string());
        let mut spec = CommandSpec::new("coreos-installer", args).in_chroot(self.host_root());
        // coreos-installer reports errors through anyhow, which appends a stack backtrace
        // when RUST_BACKTRACE is set in the agent's environment: the error's last line
        // would then be a stack frame instead of the error.
        spec.env = BTreeMap::from([("RUST_LIB_BACKTRACE".to_string(), "0".to_string())]);
        spec.env.extend(self.installer_env.clone());
        tracing::info!("Executing CoreOS installer: {spec}");

        let mut last_error = String::new();
        let mut succeeded = None;
        for attempt in 1..=self.install_attempts.max(1) {
            let span = tracing::info_span!("coreos_installer", attempt);
            let progress = request.progress.as_ref();
            let run = run_streaming(self.process.command(&spec), cancel.clone(), |line| {
                log_installer_line(line);
                if let Some(progress) = progress {
                    update_progress(progress, line);
                }
            })
            .instrument(span)
            .await;
            let exit = match run {
                Ok(exit) => exit,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Err(deploy_error(format!(
                        "Cannot run coreos-installer through chroot: {err}"
                    )))
                }
                Err(err) => {
                    return Err(deploy_error(format!(
                        "Cannot start coreos-installer: {err}"
                    )))
                }
            };
            if exit.cancelled {
                return Err(deploy_error(format!(
                    "coreos-installer was cancelled (agent shutting down) on attempt {attempt}"
                )));
            }
            if exit.success() {
                succeeded = Some((attempt, exit.last_line));
                break;
            }
            let last_line = exit.last_line.clone().unwrap_or_else(|| "None".to_string());
            if exit.code == Some(127) && last_line.contains("coreos-installer") {
                // chroot: failed to run command 'coreos-installer': No such file or directory
                return Err(self.missing_installer());
            }
            tracing::error!(
                "coreos-installer failed with {} (attempt {attempt} of {})",
                exit.describe(),
                self.install_attempts
            );
            last_error = format!(
                "coreos-installer failed with {}: {last_line}",
                exit.describe()
            );
        }
        let Some((attempts, last_line)) = succeeded else {
            return Err(deploy_error(last_error));
        };

        self.rescan(&device).await;
        let uefi = if self.booted_uefi() {
            tracing::info!("Configuring UEFI boot from device {}", device.display());
            Some(self.configure_uefi(&device).await?)
        } else {
            None
        };
        tracing::info!(
            "Successfully installed via CoreOS installer on device {}",
            device.display()
        );
        Ok(CoreosInstallOutcome {
            device,
            argv: spec.argv(),
            attempts,
            ignition: plan.ignition.is_some(),
            last_line,
            uefi,
        })
    }

    fn write_ignition(&self, ignition: &str) -> io::Result<()> {
        let path = self
            .host_root()
            .join(IGNITION_PATH_IN_ROOT.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(ignition.as_bytes())?;
        tracing::debug!("Wrote the Ignition to {}", path.display());
        Ok(())
    }

    /// Re-reads the device's partition table; failures only warn.
    ///
    /// Only block devices are re-scanned: given a regular file, `partx -a` would quietly
    /// attach a loop device to it and leave it attached.
    pub async fn rescan(&self, device: &Path) {
        let is_block = std::fs::metadata(device)
            .map(|meta| std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()))
            .unwrap_or(false);
        if !is_block {
            tracing::warn!(
                "Not re-scanning {}: it is not a block device",
                device.display()
            );
            return;
        }
        let device = device.display().to_string();
        let run = |program: &str, args: Vec<String>| {
            let spec = CommandSpec::new(program, args);
            self.runner.run(spec)
        };
        let warn = |what: &str, result: io::Result<crate::host::CommandOutput>| match result {
            Ok(out) if out.success() => true,
            Ok(out) => {
                tracing::warn!(
                    "{what} failed with {}: {}",
                    out.describe_exit(),
                    out.stderr.trim()
                );
                false
            }
            Err(err) => {
                tracing::warn!("{what} could not run: {err}");
                false
            }
        };
        let reread = run("blockdev", vec!["--rereadpt".into(), device.clone()]).await;
        warn("blockdev --rereadpt", reread);
        let update = run("partx", vec!["-u".into(), device.clone()]).await;
        if !warn("partx -u", update) {
            let add = run("partx", vec!["-a".into(), device.clone()]).await;
            warn("partx -a", add);
        }
    }

    /// Creates the UEFI boot entry for `device`, retrying failed `efibootmgr` runs.
    pub async fn configure_uefi(&self, device: &Path) -> Result<UefiBootEntry, AgentError> {
        let partition = find_esp_partition(device)
            .map_err(|err| {
                AgentError::device_not_found(format!(
                    "Cannot read the partition table of {}: {err}",
                    device.display()
                ))
            })?
            .ok_or_else(|| {
                AgentError::device_not_found(format!(
                    "No EFI system partition found on {}",
                    device.display()
                ))
            })?;
        let loader = fallback_loader();
        let attempts = self.uefi_attempts.max(1);
        for attempt in 1..=attempts {
            match self.uefi_attempt(device, partition, &loader).await {
                Ok(()) => {
                    return Ok(UefiBootEntry {
                        partition,
                        loader,
                        label: UEFI_LABEL.to_string(),
                        attempts: attempt,
                    })
                }
                Err(err) if attempt < attempts => {
                    tracing::warn!("UEFI boot configuration failed (retrying): {err}");
                    tokio::time::sleep(self.uefi_retry_delay).await;
                }
                Err(err) => {
                    return Err(deploy_error(format!(
                        "UEFI boot configuration failed after {attempts} attempts: {err}"
                    )))
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn efibootmgr(&self, args: Vec<String>) -> Result<String, String> {
        let spec = CommandSpec::new("efibootmgr", args).in_chroot(self.host_root());
        let shown = spec.to_string();
        match self.runner.run(spec).await {
            Ok(out) if out.success() => Ok(out.stdout),
            Ok(out) => Err(format!(
                "{shown} failed with {}: {}",
                out.describe_exit(),
                out.stderr.trim()
            )),
            Err(err) => Err(format!("{shown} could not run: {err}")),
        }
    }

    async fn uefi_attempt(
        &self,
        device: &Path,
        partition: u32,
        loader: &str,
    ) -> Result<(), String> {
        let listing = self.efibootmgr(vec![]).await?;
        for number in entries_labelled(&listing, UEFI_LABEL) {
            tracing::info!("Removing the old UEFI boot entry Boot{number} ({UEFI_LABEL})");
            self.efibootmgr(vec!["-b".into(), number, "-B".into()])
                .await?;
        }
        self.efibootmgr(vec![
            "-c".into(),
            "-d".into(),
            device.display().to_string(),
            "-p".into(),
            partition.to_string(),
            "-w".into(),
            "-L".into(),
            UEFI_LABEL.into(),
            "-l".into(),
            loader.into(),
        ])
        .await?;
        Ok(())
    }
}

fn log_installer_line(line: &str) {
    tracing::info!("coreos-installer: {line}");
}

fn update_progress(progress: &watch::Sender<CommandProgress>, line: &str) {
    let parsed = parse_progress(line);
    progress.send_modify(|current| {
        if let Some((done, total)) = parsed {
            current.done = done;
            current.total = total;
        }
        current.message = Some(line.to_string());
    });
}

/// The host journal for `collect_system_logs`: `journalctl --root <host root>`.
///
/// `None` ("not handled here", the generic collector runs) when journalctl fails or its
/// output is suspiciously small (< 50 bytes).
pub async fn coreos_journal(config: &AgentConfig, runner: &dyn CommandRunner) -> Option<Vec<u8>> {
    host_journal(&config.paths.host_root, runner).await
}

/// [`coreos_journal`] for a host root given directly.
pub async fn host_journal(
    host_root: &std::path::Path,
    runner: &dyn CommandRunner,
) -> Option<Vec<u8>> {
    let root = host_root.display().to_string();
    let spec = CommandSpec::new("journalctl", ["--root".to_string(), root]);
    match runner.run(spec).await {
        Ok(out) if out.success() && out.stdout.len() >= 50 => Some(out.stdout.into_bytes()),
        Ok(out) if out.success() => {
            tracing::warn!(
                "The host journal is suspiciously small ({} bytes), using the generic collector",
                out.stdout.len()
            );
            None
        }
        Ok(out) => {
            tracing::warn!(
                "journalctl --root failed with {}: {}",
                out.describe_exit(),
                out.stderr.trim()
            );
            None
        }
        Err(err) => {
            tracing::warn!("journalctl could not run: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> CoreosEnv {
        CoreosEnv::default()
    }

    fn node(instance_info: Value) -> Value {
        json!({"uuid": "1be26c0b", "instance_info": instance_info})
    }

    #[test]
    fn pre_rendered_configdrive_is_rejected() {
        let err = plan_install(
            &node(json!({"configdrive": "H4sIAAAAAAAA", "image_source": "http://x/i.raw.xz"})),
            Some("node-1"),
            &env(),
        )
        .unwrap_err();
        assert_eq!(err.error_type, "DeploymentError");
        assert!(err.details.contains("pre-rendered configdrive"), "{err}");
    }

    #[test]
    fn full_plan_matches_the_contract_order() {
        let env = CoreosEnv {
            ip_options: Some("ip=dhcp6".into()),
            copy_network: Some("TRUE".into()),
            default_hostname: None,
        };
        let plan = plan_install(
            &node(json!({
                "image_source": "http://127.0.0.1:1/fcos.raw.xz",
                "configdrive": {
                    "meta_data": {"coreos_append_karg": ["console=ttyS0", "foo=bar"]},
                    "user_data": {"ignition": {"version": "3.2.0"}},
                },
            })),
            Some("node-1"),
            &env,
        )
        .expect("plan");
        assert_eq!(
            plan.args,
            [
                "--preserve-on-error",
                "--ignition-file",
                "/tmp/ironic.ign",
                "--append-karg",
                "console=ttyS0,foo=bar",
                "--image-url",
                "http://127.0.0.1:1/fcos.raw.xz",
                "--insecure",
                "--append-karg",
                "ip=dhcp6",
                "--copy-network",
            ]
        );
        let ignition: Value =
            serde_json::from_str(plan.ignition.as_deref().expect("ign")).expect("json");
        assert_eq!(ignition["ignition"]["version"], "3.2.0");
        assert_eq!(
            ignition["storage"]["files"],
            json!([{"path": "/etc/hostname", "mode": 420, "overwrite": true,
                    "contents": {"source": "data:,node-1"}}])
        );
    }

    #[test]
    fn no_image_source_means_offline_and_meta_data_wins_over_env() {
        let env = CoreosEnv {
            copy_network: Some("true".into()),
            ..CoreosEnv::default()
        };
        let plan = plan_install(
            &node(json!({"configdrive": {"meta_data": {"coreos_copy_network": false}}})),
            None,
            &env,
        )
        .expect("plan");
        assert_eq!(plan.args, ["--preserve-on-error", "--offline"]);
        assert_eq!(plan.ignition, None);
        let plan = plan_install(
            &node(json!({"configdrive": {"meta_data": {"coreos_copy_network": true}}})),
            None,
            &CoreosEnv::default(),
        )
        .expect("plan");
        assert_eq!(
            plan.args,
            ["--preserve-on-error", "--offline", "--copy-network"]
        );
        let plan = plan_install(&node(json!({})), None, &env).expect("plan");
        assert_eq!(
            plan.args,
            ["--preserve-on-error", "--offline", "--copy-network"]
        );
    }

    #[test]
    fn string_user_data_is_kept_verbatim_without_hostname_and_extended_with_one() {
        let text = r#"{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "/a"}]}}"#;
        let drive = json!({"user_data": text});
        assert_eq!(
            ignition_with_hostname(drive.get("user_data"), None).expect("ign"),
            Some(text.to_string())
        );
        let with = ignition_with_hostname(drive.get("user_data"), Some("a b/é")).expect("ign");
        let with: Value = serde_json::from_str(&with.expect("some")).expect("json");
        let files = with["storage"]["files"].as_array().expect("files");
        assert_eq!(files.len(), 2);
        assert_eq!(files[1]["contents"]["source"], "data:,a%20b/%C3%A9");
        let err = ignition_with_hostname(Some(&json!("not json")), Some("h")).unwrap_err();
        assert!(err.details.contains("not a JSON Ignition"), "{err}");
    }

    #[test]
    fn empty_ignition_with_hostname_gets_the_default_version() {
        for empty in [None, Some(json!("")), Some(json!({})), Some(Value::Null)] {
            let ign = ignition_with_hostname(empty.as_ref(), Some("node-1"))
                .expect("ign")
                .expect("some");
            let ign: Value = serde_json::from_str(&ign).expect("json");
            assert_eq!(ign["ignition"]["version"], "3.0.0");
            assert_eq!(ign["storage"]["files"][0]["path"], "/etc/hostname");
        }
        assert_eq!(ignition_with_hostname(None, None).expect("ign"), None);
    }

    #[test]
    fn progress_lines_parse_to_bytes() {
        assert_eq!(
            parse_progress("Read disk 26.0 KiB/52.0 KiB (50%)"),
            Some((26 * 1024, Some(52 * 1024)))
        );
        assert_eq!(
            parse_progress("> Read disk 1.5 GiB/3.0 GiB (50%)   "),
            Some((1_610_612_736, Some(3_221_225_472)))
        );
        assert_eq!(
            parse_progress("Read disk 700.0 MiB"),
            Some((734_003_200, None))
        );
        assert_eq!(parse_progress("Reading signature"), None);
        assert_eq!(parse_progress("Install complete."), None);
        assert_eq!(parse_progress("Read disk lots/more (5%)"), None);
    }

    #[test]
    fn progress_updates_the_watch() {
        let (tx, rx) = watch::channel(CommandProgress::default());
        update_progress(&tx, "Downloading image from http://x");
        assert_eq!(rx.borrow().done, 0);
        update_progress(&tx, "Read disk 1.0 MiB/4.0 MiB (25%)");
        let now = rx.borrow().clone();
        assert_eq!((now.done, now.total), (1 << 20, Some(4 << 20)));
        assert_eq!(
            now.message.as_deref(),
            Some("Read disk 1.0 MiB/4.0 MiB (25%)")
        );
    }

    #[test]
    fn efibootmgr_listing_finds_our_label_only() {
        let listing = "BootCurrent: 0001\nTimeout: 0 seconds\nBootOrder: 0003,0001\n\
                       Boot0001* UEFI PXEv4\tPciRoot(0x0)\n\
                       Boot0003* ironic1\tHD(2,GPT,…)/File(\\EFI\\BOOT\\BOOTX64.EFI)\n\
                       Boot000A  ironic1\n\
                       Boot0004* ironic10\n";
        assert_eq!(entries_labelled(listing, "ironic1"), ["0003", "000A"]);
    }

    #[test]
    fn esp_is_found_in_a_gpt_image() {
        // A minimal GPT by hand: header at LBA 1, entries at LBA 2, ESP as entry 2.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk.img");
        let mut disk = vec![0u8; 512 * 40];
        disk[512..520].copy_from_slice(b"EFI PART");
        disk[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        disk[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        disk[1024..1040].copy_from_slice(&[1; 16]);
        disk[1024 + 128..1024 + 144].copy_from_slice(&ESP_TYPE_GUID);
        std::fs::write(&path, &disk).expect("write");
        assert_eq!(find_esp_partition(&path).expect("read"), Some(2));
        std::fs::write(&path, vec![0u8; 4096 * 3]).expect("write");
        assert_eq!(find_esp_partition(&path).expect("read"), None);
    }
}
