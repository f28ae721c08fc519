//! The streaming pipeline: HTTP body → (hasher thread ‖ writer thread).
//!
//! Chunks go through two bounded channels, so memory stays flat whatever the
//! image size: at most `CHANNEL_DEPTH` chunks in flight per side plus one
//! `WRITE_BLOCK` aligned buffer. Devices are written with `O_DIRECT` in
//! `WRITE_BLOCK` pieces; an unaligned tail goes through the page cache and is
//! fsynced.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::checksum::Hasher;
use super::download::{Failure, Fetcher, Response};
use crate::installer::disks::{self, AlignedBuf};
use crate::installer::failures;
use crate::installer::progress::ProgressSink;

/// Size of one direct write.
pub const WRITE_BLOCK: usize = 8 * 1024 * 1024;
/// Chunks buffered between the download and each worker.
pub const CHANNEL_DEPTH: usize = 64;

/// Where the bytes go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The device or file.
    pub path: PathBuf,
    /// Write with `O_DIRECT` (block devices).
    pub direct: bool,
    /// Refuse to write more than this many bytes (the device size).
    pub limit: Option<u64>,
}

fn no_space(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, msg)
}

/// Whether an I/O error means "out of space".
pub fn is_no_space(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENOSPC)
        || matches!(
            err.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::WriteZero
        )
}

/// Whether an I/O error means the device refuses writes (read-only, not permitted):
/// retrying the download cannot help.
pub fn is_write_refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EROFS | libc::EPERM | libc::EACCES)
    )
}

struct Writer {
    file: File,
    tail: Option<File>,
    path: PathBuf,
    direct: bool,
    limit: Option<u64>,
    buf: AlignedBuf,
    fill: usize,
    offset: u64,
}

impl Writer {
    fn open(target: &Target) -> io::Result<Self> {
        let file = if target.direct {
            disks::open_direct(&target.path)?
        } else {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&target.path)?
        };
        Ok(Self {
            file,
            tail: None,
            path: target.path.clone(),
            direct: target.direct,
            limit: target.limit,
            buf: AlignedBuf::zeroed(WRITE_BLOCK),
            fill: 0,
            offset: 0,
        })
    }

    fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = WRITE_BLOCK - self.fill;
            let n = room.min(data.len());
            self.buf.as_mut_slice()[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == WRITE_BLOCK {
                self.flush_block(WRITE_BLOCK)?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self, len: usize) -> io::Result<()> {
        if let Some(limit) = self.limit {
            if self.offset + len as u64 > limit {
                return Err(no_space(format!(
                    "the image is larger than the {limit} bytes of {}",
                    self.path.display()
                )));
            }
        }
        let aligned = !self.direct || len.is_multiple_of(512);
        if aligned {
            self.file
                .write_all_at(&self.buf.as_slice()[..len], self.offset)?;
        } else {
            // The unaligned tail of a direct write: through the page cache, then fsync.
            let tail = match self.tail.take() {
                Some(file) => file,
                None => OpenOptions::new().write(true).open(&self.path)?,
            };
            tail.write_all_at(&self.buf.as_slice()[..len], self.offset)?;
            tail.sync_all()?;
        }
        self.offset += len as u64;
        self.fill = 0;
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        if self.fill > 0 {
            let len = self.fill;
            self.flush_block(len)?;
        }
        self.file.sync_all()?;
        Ok(self.offset)
    }
}

fn write_loop(mut rx: mpsc::Receiver<Bytes>, target: Target) -> io::Result<u64> {
    let mut writer = Writer::open(&target)?;
    while let Some(chunk) = rx.blocking_recv() {
        writer.push(&chunk)?;
    }
    writer.finish()
}

/// What a completed stream produced.
#[derive(Debug)]
pub struct Streamed {
    /// The hex digest of the bytes.
    pub digest: String,
    /// Bytes written.
    pub bytes: u64,
}

/// Streams the response body to `target` while hashing it.
pub async fn stream_body(
    fetcher: &Fetcher,
    response: &mut Response,
    hasher: Hasher,
    target: Target,
    progress: &ProgressSink,
    image_id: &str,
) -> Result<Streamed, Failure> {
    let expected_len = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let device = target.path.display().to_string();
    if let (Some(len), Some(limit)) = (expected_len, target.limit) {
        if len > limit {
            return Err(Failure::Stop(failures::image_out_of_space(
                image_id,
                format!("the image ({len} bytes) does not fit {device} ({limit} bytes)"),
            )));
        }
    }
    progress.start(
        format!("writing image {image_id} to {device}"),
        expected_len,
    );
    let (wtx, wrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (htx, mut hrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = tokio::task::spawn_blocking(move || write_loop(wrx, target));
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher;
        while let Some(chunk) = hrx.blocking_recv() {
            hasher.update(&chunk);
        }
        hasher.hex()
    });
    let mut done = 0u64;
    let mut read_failure = None;
    loop {
        match fetcher.next_chunk(response).await {
            Ok(Some(chunk)) => {
                done += chunk.len() as u64;
                if htx.send(chunk.clone()).await.is_err() || wtx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is read below
                }
                progress.update(done);
            }
            Ok(None) => break,
            Err(failure) => {
                read_failure = Some(failure);
                break;
            }
        }
    }
    drop(wtx);
    drop(htx);
    let written = writer.await.map_err(|err| {
        Failure::Retry(failures::image_write(
            &device,
            format!("writer task: {err}"),
        ))
    })?;
    let digest = hashing.await.map_err(|err| {
        Failure::Retry(failures::image_write(&device, format!("hash task: {err}")))
    })?;
    progress.update(done);
    let bytes = match written {
        Ok(bytes) => bytes,
        Err(err) if is_no_space(&err) => {
            return Err(Failure::Stop(failures::image_out_of_space(image_id, err)))
        }
        Err(err) if is_write_refused(&err) => {
            return Err(Failure::Stop(failures::image_write(
                &device,
                format!("the device refuses writes: {err}"),
            )))
        }
        Err(err) => return Err(Failure::Retry(failures::image_write(&device, err))),
    };
    if let Some(failure) = read_failure {
        return Err(failure);
    }
    if let Some(len) = expected_len {
        if bytes != len {
            return Err(Failure::Retry(failures::image_download(
                image_id,
                format!("the body ended after {bytes} of {len} bytes"),
            )));
        }
    }
    Ok(Streamed { digest, bytes })
}

/// Zeroes the start and end of a device after a failed write so a partial
/// image is never mistaken for a good one.
pub fn scrub_partial(device: &Path) {
    if let Err(err) = disks::zero_ends(device, 512, 2048) {
        tracing::warn!(device = %device.display(), error = %err, "could not scrub the partly written device");
    }
}
