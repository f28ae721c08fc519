//! The config drive of whole-disk images (§10.5 "After writing", item 2): find
//! or create a GPT partition named `config-2` (at most 64 MiB, at the end of the
//! disk) and write the config drive into it at its offset on the disk.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use base64::Engine;

use super::download::Fetcher;
use crate::errors::AgentError;
use crate::host::{CommandRunner, CommandSpec};
use crate::installer::failures;

/// Largest config drive IPA accepts (64 MiB).
pub const MAX_CONFIGDRIVE: u64 = 64 * 1024 * 1024;

/// Decodes a config drive: gzip+base64 text (or plain base64), or an http(s) URL.
pub async fn decode(value: &str, fetcher: &Fetcher) -> Result<Vec<u8>, AgentError> {
    let raw = if super::checksum::is_url(value) {
        fetcher.fetch_text(value).await?.into_bytes()
    } else {
        value.as_bytes().to_vec()
    };
    let text: Vec<u8> = raw
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| AgentError::invalid_params(format!("config drive is not base64: {e}")))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(MAX_CONFIGDRIVE + 1)
            .read_to_end(&mut out)
            .map_err(|e| AgentError::invalid_params(format!("config drive is not gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// (number, first sector, last sector) of the `config-2` partition in `sgdisk -p` output.
pub fn find_config_partition(sgdisk_p: &str) -> Option<(u32, u64, u64)> {
    sgdisk_p.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 7 && f.last() == Some(&"config-2") {
            Some((f[0].parse().ok()?, f[1].parse().ok()?, f[2].parse().ok()?))
        } else {
            None
        }
    })
}

async fn sgdisk(
    runner: &dyn CommandRunner,
    args: &[&str],
    dev: &str,
) -> Result<String, AgentError> {
    let mut all: Vec<&str> = args.to_vec();
    all.push(dev);
    let spec = CommandSpec::new("sgdisk", all);
    let line = spec.to_string();
    let out = runner
        .run(spec)
        .await
        .map_err(|e| failures::image_write(dev, format!("{line}: {e}")))?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(failures::image_write(
            dev,
            format!("{line} failed: {} {}", out.stdout.trim(), out.stderr.trim()),
        ))
    }
}

/// Writes the config drive into the `config-2` partition of `device`.
pub async fn write(
    runner: &dyn CommandRunner,
    device: &Path,
    data: &[u8],
) -> Result<(), AgentError> {
    let dev = device.display().to_string();
    if data.len() as u64 > MAX_CONFIGDRIVE {
        return Err(AgentError::invalid_params(format!(
            "config drive is {} bytes, larger than 64 MiB",
            data.len()
        )));
    }
    // Only GPT images are handled; sgdisk refuses to convert an MBR disk silently.
    let table = sgdisk(runner, &["-p"], &dev).await?;
    if !table.contains("GPT") && !table.contains("Number  Start") {
        return Err(failures::image_write(
            &dev,
            "the image has no GPT partition table",
        ));
    }
    let part = match find_config_partition(&table) {
        Some(p) => p,
        None => {
            // Move the backup GPT to the end of the (bigger) disk, then append.
            sgdisk(runner, &["-e"], &dev).await?;
            // 64 MiB at the end; on a disk with less room at the end, the
            // largest free block.
            if sgdisk(runner, &["-n", "0:-64M:0", "-c", "0:config-2"], &dev)
                .await
                .is_err()
            {
                sgdisk(runner, &["-n", "0:0:0", "-c", "0:config-2"], &dev).await?;
            }
            let table = sgdisk(runner, &["-p"], &dev).await?;
            find_config_partition(&table).ok_or_else(|| {
                failures::image_write(&dev, "the config-2 partition was not created")
            })?
        }
    };
    let (_, first, last) = part;
    let capacity = (last - first + 1) * 512;
    if data.len() as u64 > capacity {
        return Err(failures::image_write(
            &dev,
            format!(
                "config drive ({} bytes) does not fit the config-2 partition ({capacity} bytes)",
                data.len()
            ),
        ));
    }
    let path = device.to_path_buf();
    let data = data.to_vec();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.write_all_at(&data, first * 512)?;
        file.sync_all()
    })
    .await
    .map_err(|e| failures::image_write(&dev, e))?
    .map_err(|e| failures::image_write(&dev, format!("writing the config drive: {e}")))?;
    tracing::info!(device = %dev, partition = part.0, "config drive written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_config_partition() {
        let p = "Number  Start (sector)    End (sector)  Size       Code  Name\n   1            2048           10239   4.0 MiB     8300  \n   2           63488           81886   9.0 MiB     8300  config-2\n";
        assert_eq!(find_config_partition(p), Some((2, 63488, 81886)));
        assert_eq!(find_config_partition("nothing"), None);
    }
}
