//! The streaming pipeline: HTTP body → (hasher thread ‖ writer thread).
//!
//! The body's chunks (often only a few KiB each) are gathered into batches of
//! at least `BATCH_BYTES` without copying, and the batches go through two
//! bounded channels: one hand-over (and thread wake-up) per batch instead of
//! per chunk. Memory stays flat whatever the image size: at most
//! `CHANNEL_DEPTH` batches in flight per side plus one `WRITE_BLOCK` aligned
//! buffer. Devices are written with `O_DIRECT` in `WRITE_BLOCK` pieces; an
//! unaligned tail goes through the page cache and is fsynced.

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
/// Batches buffered between the download and each worker.
pub const CHANNEL_DEPTH: usize = 8;
/// A batch is handed to the workers once it holds this many bytes (or the body ends).
pub const BATCH_BYTES: usize = 1024 * 1024;

/// Body chunks handed over together (shared by the hasher and the writer).
type Batch = std::sync::Arc<Vec<Bytes>>;

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

fn write_loop(mut rx: mpsc::Receiver<Batch>, target: Target) -> io::Result<u64> {
    let mut writer = Writer::open(&target)?;
    while let Some(batch) = rx.blocking_recv() {
        for chunk in batch.iter() {
            writer.push(chunk)?;
        }
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
    let (wtx, wrx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let (htx, mut hrx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let writer = tokio::task::spawn_blocking(move || write_loop(wrx, target));
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher;
        while let Some(batch) = hrx.blocking_recv() {
            for chunk in batch.iter() {
                hasher.update(chunk);
            }
        }
        hasher.hex()
    });
    let mut done = 0u64;
    let mut read_failure = None;
    let mut batch = Vec::new();
    let mut batched = 0usize;
    loop {
        let next = fetcher.next_chunk(response).await;
        let ended = !matches!(next, Ok(Some(_)));
        match next {
            Ok(Some(chunk)) => {
                done += chunk.len() as u64;
                batched += chunk.len();
                batch.push(chunk);
            }
            Ok(None) => {}
            Err(failure) => read_failure = Some(failure),
        }
        if (ended || batched >= BATCH_BYTES) && !batch.is_empty() {
            let full: Batch = std::sync::Arc::new(std::mem::take(&mut batch));
            batched = 0;
            if htx.send(full.clone()).await.is_err() || wtx.send(full).await.is_err() {
                break; // the writer failed; its error is read below
            }
            progress.update(done);
        }
        if ended {
            break;
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
