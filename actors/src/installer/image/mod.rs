//! `standby.prepare_image` / deploy step `write_image` (§10) and
//! `standby.get_partition_uuids`.
//!
//! Raw images with `stream_raw_images` go straight from the HTTP body to the
//! device while being hashed; other formats are downloaded to a file, hashed,
//! inspected and converted with `qemu-img`.

pub mod checksum;
pub mod configdrive;
pub mod download;
pub mod proxy;
pub mod qemu;
pub mod tls;
pub mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Map, Value};

use self::checksum::Algo;
use self::download::{Failure, Fetcher};
use self::write::Target;
use super::disks::{self, BlockDev};
use super::failures;
use super::steps::StepEnv;
use crate::errors::AgentError;
use crate::host::CommandSpec;

/// The fields of `image_info` this agent uses (§10.2).
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// `id`.
    pub id: String,
    /// `urls`.
    pub urls: Vec<String>,
    /// `checksum` (digest or URL).
    pub checksum: Option<String>,
    /// `os_hash_algo`.
    pub os_hash_algo: Option<String>,
    /// `os_hash_value` (digest or URL).
    pub os_hash_value: Option<String>,
    /// `disk_format`.
    pub disk_format: Option<String>,
    /// `stream_raw_images`.
    pub stream_raw_images: bool,
    /// `image_type` (`partition` or whole disk).
    pub image_type: Option<String>,
    /// `proxies` and `no_proxy`.
    pub proxies: proxy::ProxySettings,
    /// `image_server_auth_strategy`.
    pub auth_strategy: Option<String>,
    /// `image_server_user`.
    pub user: Option<String>,
    /// `image_server_password`.
    pub password: Option<String>,
    /// `image_request_authorization`.
    pub request_authorization: Option<String>,
}

fn opt_str(info: &Map<String, Value>, key: &str) -> Option<String> {
    info.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl ImageInfo {
    /// Validates (as IPA's validator, 400 errors) and reads `image_info`.
    pub fn parse(value: Option<&Value>, md5_enabled: bool) -> Result<Self, AgentError> {
        crate::coordinator::commands::validate_image_info(value)?;
        validate_checksum_config(value, md5_enabled)?;
        let info = value
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let id = match info.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(AgentError::invalid_params(
                    "Image 'id' must be a non-empty string.",
                ))
            }
        };
        if id.contains('/') || id == "." || id == ".." {
            return Err(AgentError::invalid_params(
                "Image 'id' must not contain '/'.",
            ));
        }
        let urls = info["urls"]
            .as_array()
            .map(|urls| {
                urls.iter()
                    .map(|u| u.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or_default()
            .ok_or_else(|| AgentError::invalid_params("Image 'urls' must be a list of strings."))?;
        let stream = match info.get("stream_raw_images") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(AgentError::invalid_params(
                    "Image 'stream_raw_images' must be a boolean.",
                ))
            }
        };
        Ok(Self {
            id,
            urls,
            checksum: opt_str(&info, "checksum"),
            os_hash_algo: opt_str(&info, "os_hash_algo"),
            os_hash_value: opt_str(&info, "os_hash_value"),
            disk_format: opt_str(&info, "disk_format"),
            stream_raw_images: stream,
            image_type: opt_str(&info, "image_type"),
            proxies: proxy::ProxySettings::from_image_info(
                info.get("proxies"),
                info.get("no_proxy"),
            )?,
            auth_strategy: opt_str(&info, "image_server_auth_strategy"),
            user: opt_str(&info, "image_server_user"),
            password: opt_str(&info, "image_server_password"),
            request_authorization: opt_str(&info, "image_request_authorization"),
        })
    }

    /// Whether this is a whole-disk image (anything but `partition`).
    pub fn is_whole_disk(&self) -> bool {
        self.image_type.as_deref() != Some("partition")
    }

    /// Whether the bytes stream straight to the device.
    pub fn streams(&self) -> bool {
        self.stream_raw_images && self.disk_format.as_deref() == Some("raw")
    }

    /// The basename of `urls[0]`'s path (for checksum files).
    pub fn file_name(&self) -> String {
        let first = self.urls.first().map(String::as_str).unwrap_or("");
        url::Url::parse(first)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_string))
            })
            .unwrap_or_default()
    }
}

/// Picks the algorithm and expected digest (§10.3).
pub async fn resolve_checksum(
    env: &StepEnv,
    info: &ImageInfo,
    fetcher: &Fetcher,
) -> Result<(Algo, String), AgentError> {
    let md5_check = |algo: Algo| {
        if algo == Algo::Md5 && !env.config.md5_enabled {
            Err(failures::image_checksum_config(
                "Image checksum is an MD5 digest, but MD5 checksums are disabled (md5_enabled)",
            ))
        } else {
            Ok(algo)
        }
    };
    let digest_of = |value: &str| -> Result<(Algo, String), AgentError> {
        let algo = Algo::from_digest_len(value.len())
            .filter(|_| checksum::is_hex(value))
            .ok_or_else(|| {
                failures::image_checksum_config(format!(
                    "Unable to determine the hash algorithm of checksum {value:?}"
                ))
            })?;
        Ok((md5_check(algo)?, value.to_ascii_lowercase()))
    };
    async fn from_file(fetcher: &Fetcher, url: &str, name: &str) -> Result<String, AgentError> {
        let text = fetcher.fetch_text(url).await?;
        checksum::parse_checksum_file(&text, name)
            .map_err(|err| failures::image_download(&fetcher_id(fetcher), format!("{url}: {err}")))
    }
    fn fetcher_id(_f: &Fetcher) -> String {
        String::from("checksum file")
    }
    if let (Some(name), Some(value)) = (&info.os_hash_algo, &info.os_hash_value) {
        if let Some(algo) = Algo::from_name(name) {
            let algo = md5_check(algo)?;
            let value = if checksum::is_url(value) {
                from_file(fetcher, value, &info.file_name()).await?
            } else {
                value.to_ascii_lowercase()
            };
            if Algo::from_digest_len(value.len()) != Some(algo) {
                tracing::warn!(algo = %name, "the digest length suggests another algorithm than os_hash_algo");
            }
            return Ok((algo, value));
        }
    }
    match &info.checksum {
        Some(value) if checksum::is_url(value) => {
            let digest = from_file(fetcher, value, &info.file_name()).await?;
            digest_of(&digest)
        }
        Some(value) => digest_of(value),
        None => Err(failures::image_checksum_config(
            "No usable checksum: os_hash_algo is unknown and there is no legacy checksum",
        )),
    }
}

/// The state `get_partition_uuids` reports, and the last written image.
#[derive(Debug, Default)]
struct Written {
    image_id: Option<String>,
    device: Option<PathBuf>,
    uuids: Option<Value>,
}

/// Per installer instance (one per agent process; several in tests).
fn with_written<T>(instance: usize, f: impl FnOnce(&mut Written) -> T) -> T {
    static SLOT: OnceLock<Mutex<HashMap<usize, Written>>> = OnceLock::new();
    let mut map = SLOT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    f(map.entry(instance).or_default())
}

/// `standby.get_partition_uuids`: `{}` before any write.
pub fn partition_uuids(env: &StepEnv) -> Value {
    with_written(env.instance, |w| w.uuids.clone()).unwrap_or_else(|| json!({}))
}

/// The MBR disk signature (`hexdump -s 440 -n 4 -e '"0x%08x"'`).
pub fn disk_signature(device: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(device)?;
    let mut sig = [0u8; 4];
    file.read_exact_at(&mut sig, 440)?;
    Ok(format!("0x{:08x}", u32::from_le_bytes(sig)))
}

/// The install device the inspector chose for the node (`RunStep::install_device`,
/// root-device hints §5.6) as a [`BlockDev`]. Refused when the step got none, when the
/// allow-list does not permit it, when it is not a writable disk, or when it backs a
/// mounted file system of this system (the machine's own disk), whatever the hints said.
pub async fn install_target(env: &StepEnv, chosen: Option<&str>) -> Result<BlockDev, AgentError> {
    let chosen = chosen.ok_or_else(|| {
        AgentError::device_not_found("No install device was chosen for this step")
    })?;
    let path = Path::new(chosen);
    disks::check_allowed(&env.allowlist, path).map_err(|e| failures::image_write(chosen, e))?;
    let paths = &env.config.paths;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(chosen);
    if crate::host::disks_in_use(&paths.proc_root, &paths.sys_root).contains(name) {
        return Err(failures::image_write(
            chosen,
            "it holds a mounted file system of this system; refusing to write it",
        ));
    }
    let listed = disks::list_devices(env.runner.as_ref(), &env.allowlist, false)
        .await
        .map_err(|err| AgentError::device_not_found(format!("listing block devices: {err}")))?;
    let device = listed
        .into_iter()
        .find(|d| d.path == path && d.is_disk())
        .ok_or_else(|| {
            AgentError::device_not_found(format!("{chosen} is not a disk this agent may write"))
        })?;
    if device.read_only {
        return Err(failures::image_write(chosen, "the device is read-only"));
    }
    Ok(device)
}

async fn settle_and_rescan(env: &StepEnv, device: &str) {
    for spec in [
        CommandSpec::new("udevadm", ["settle"]),
        CommandSpec::new("partprobe", [device]),
    ] {
        if let Ok(out) = env.runner.run(spec.clone()).await {
            if !out.success() {
                tracing::debug!(command = %spec, stderr = %out.stderr.trim(), "rescan helper failed");
            }
        }
    }
}

/// One whole download+write attempt.
async fn attempt(
    env: &StepEnv,
    info: &ImageInfo,
    fetcher: &Fetcher,
    algo: Algo,
    expected: &str,
    device: &BlockDev,
    scratch: &Path,
) -> Result<(), Failure> {
    let (mut response, url) = fetcher.open(&info.urls).await?;
    let dev = device.path.display().to_string();
    let target = if info.streams() {
        Target {
            path: device.path.clone(),
            direct: true,
            limit: Some(device.size),
        }
    } else {
        Target {
            path: scratch.to_path_buf(),
            direct: false,
            limit: None,
        }
    };
    let streamed = write::stream_body(
        fetcher,
        &mut response,
        algo.hasher(),
        target,
        &env.progress,
        &info.id,
    )
    .await?;
    if streamed.digest != expected {
        return Err(Failure::Retry(failures::image_checksum(
            &info.id,
            &url,
            expected,
            &streamed.digest,
        )));
    }
    tracing::info!(image = %info.id, bytes = streamed.bytes, "image downloaded and verified");
    if info.streams() {
        return Ok(());
    }
    // Inspect and convert.
    let format = if env.config.disable_deep_image_inspection
        || matches!(info.disk_format.as_deref(), Some("raw" | "gpt"))
    {
        qemu::detect_format(scratch)
            .map_err(|e| Failure::Stop(failures::invalid_image(e.to_string())))?
    } else {
        qemu::inspect(
            scratch,
            info.disk_format.as_deref(),
            &env.config.permitted_image_formats,
        )
        .map_err(Failure::Stop)?
    };
    let qemu = qemu::QemuImg::locate(&env.config.paths.host_root);
    let file = match &qemu.chroot {
        Some(root) => Path::new("/").join(scratch.strip_prefix(root).unwrap_or(scratch)),
        None => scratch.to_path_buf(),
    };
    let file = file.display().to_string();
    let size = qemu
        .virtual_size(env.runner.as_ref(), &file, format)
        .await
        .map_err(|e| Failure::Stop(failures::invalid_image(e)))?;
    if size > device.size {
        return Err(Failure::Stop(failures::image_out_of_space(
            &info.id,
            format!(
                "the image's virtual size ({size} bytes) does not fit {dev} ({} bytes)",
                device.size
            ),
        )));
    }
    disks::check_allowed(&env.allowlist, &device.path)
        .map_err(|e| Failure::Stop(failures::image_write(&dev, e)))?;
    // Whole-disk images: wipe the old metadata right before converting, as IPA does.
    super::erase::erase_metadata_of(env, device)
        .await
        .map_err(|e| Failure::Stop(failures::image_write(&dev, e)))?;
    env.progress
        .start(format!("converting image {} to {dev}", info.id), Some(size));
    let converted = qemu
        .convert(env.runner.as_ref(), &file, format, &dev)
        .await
        .map_err(|e| Failure::Retry(failures::image_write(&dev, e)));
    env.progress.finish();
    converted
}

/// `prepare_image`: returns `image (<id>) written to device <dev> root_uuid=<u>`.
pub async fn prepare_image(
    env: &StepEnv,
    args: &Map<String, Value>,
    install_device: Option<&str>,
) -> Result<String, AgentError> {
    let info = ImageInfo::parse(args.get("image_info"), env.config.md5_enabled)?;
    if !info.is_whole_disk() {
        return Err(failures::image_write(
            "(none)",
            "partition images are not supported by this agent yet; use a whole-disk image",
        ));
    }
    let device = install_target(env, install_device).await?;
    let dev = device.path.display().to_string();

    let already = with_written(env.instance, |state| {
        state.image_id.as_deref() == Some(info.id.as_str())
            && state.device.as_deref() == Some(device.path.as_path())
    });
    if already {
        tracing::info!(image = %info.id, "image already written in this process; skipping the download");
    } else {
        write_image(env, &info, &device).await?;
    }
    let configdrive = match args.get("configdrive") {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        _ => args
            .get("image_info")
            .and_then(|i| i.get("configdrive"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    if let Some(text) = configdrive {
        let fetcher = Fetcher::new(&env.config, &info)?;
        let data = configdrive::decode(&text, &fetcher).await?;
        configdrive::write(env.runner.as_ref(), &device.path, &data).await?;
    }
    let root_uuid = disk_signature(&device.path)
        .map_err(|e| failures::image_write(&dev, format!("reading the disk signature: {e}")))?;
    with_written(env.instance, |state| {
        state.image_id = Some(info.id.clone());
        state.device = Some(device.path.clone());
        state.uuids = Some(json!({ "root uuid": root_uuid }));
    });
    Ok(format!(
        "image ({}) written to device {dev} root_uuid={root_uuid}",
        info.id
    ))
}

async fn write_image(env: &StepEnv, info: &ImageInfo, device: &BlockDev) -> Result<(), AgentError> {
    let dev = device.path.display().to_string();
    let fetcher = Fetcher::new(&env.config, info)?;
    let (algo, expected) = resolve_checksum(env, info, &fetcher).await?;
    let scratch_dir = scratch_dir(env);
    std::fs::create_dir_all(&scratch_dir)
        .map_err(|e| failures::image_write(&dev, format!("{}: {e}", scratch_dir.display())))?;
    let scratch = scratch_dir.join(&info.id);
    let attempts = env.config.image_download_connection_retries + 1;
    let mut result = Err(failures::image_download(&info.id, "no attempt made"));
    for n in 1..=attempts {
        match attempt(env, info, &fetcher, algo, &expected, device, &scratch).await {
            Ok(()) => {
                result = Ok(());
                break;
            }
            Err(Failure::Stop(err)) => {
                result = Err(err);
                break;
            }
            Err(Failure::Retry(err)) => {
                tracing::warn!(image = %info.id, attempt = n, error = %err.details, "image write attempt failed");
                result = Err(err);
                if n < attempts {
                    if let Err(stop) = fetcher.check_deadline() {
                        result = Err(stop.into_error());
                        break;
                    }
                    tokio::time::sleep(fetcher.interval).await;
                }
            }
        }
    }
    env.progress.finish();
    let _ = std::fs::remove_file(&scratch);
    if let Err(err) = result {
        if info.streams() {
            let path = device.path.clone();
            let _ = tokio::task::spawn_blocking(move || write::scrub_partial(&path)).await;
        }
        return Err(err);
    }
    settle_and_rescan(env, &dev).await;
    Ok(())
}

/// Where non-streamed images are downloaded: under the host root when the host's
/// qemu-img converts them (it must see the file), else the temporary directory.
fn scratch_dir(env: &StepEnv) -> PathBuf {
    let qemu = qemu::QemuImg::locate(&env.config.paths.host_root);
    match qemu.chroot {
        Some(root) => root.join("var/tmp/ironic-agent-images"),
        None => std::env::temp_dir().join("ironic-agent-images"),
    }
}

/// The config-dependent part of IPA's validator (400): a 32-character digest
/// needs `md5_enabled`, and a legacy digest must have a known length.
pub fn validate_checksum_config(
    image_info: Option<&Value>,
    md5_enabled: bool,
) -> Result<(), AgentError> {
    let Some(info) = image_info.and_then(Value::as_object) else {
        return Ok(());
    };
    let non_empty = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if non_empty("os_hash_algo") && non_empty("os_hash_value") {
        return Ok(());
    }
    let Some(value) = info.get("checksum").and_then(Value::as_str) else {
        return Ok(());
    };
    if checksum::is_url(value) || value.len() > 32 || (value.len() == 32 && md5_enabled) {
        return Ok(());
    }
    Err(AgentError::invalid_params(if value.len() == 32 {
        "Image checksum is an MD5 digest, but MD5 checksums are disabled (md5_enabled is false); supply os_hash_algo and os_hash_value".to_string()
    } else {
        format!("Image checksum {value:?} is not a usable digest")
    }))
}
