//! The streaming pipeline: HTTP body → fixed pool of aligned blocks →
//! (hasher thread ‖ writer thread).
//!
//! The download task copies the body into [`WRITE_BLOCK`]-sized, `O_DIRECT`-aligned
//! blocks taken from a pool of [`POOL_BLOCKS`]; each full block goes to the hasher and
//! to the writer at once and returns to the pool when both are done. So the network,
//! the hash and the device write overlap, the threads wake once per block (not per
//! 8 KiB body chunk), nothing is allocated per chunk, and memory stays flat whatever
//! the image size (`POOL_BLOCKS × WRITE_BLOCK`). Devices are written with `O_DIRECT`;
//! an unaligned tail goes through the page cache and is fsynced.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::checksum::Hasher;
use super::download::{Failure, Fetcher, Response};
use crate::installer::disks::{self, AlignedBuf};
use crate::installer::failures;
use crate::installer::progress::ProgressSink;

/// Size of one block: one direct write, one hash update, one progress update.
pub const WRITE_BLOCK: usize = 4 * 1024 * 1024;
/// Blocks in the pool: being filled, hashed, written, or queued for either.
pub const POOL_BLOCKS: usize = 6;

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

/// A filled block shared by the hasher and the writer; its buffer goes back to the
/// pool when both have dropped it.
struct Block {
    buf: Option<AlignedBuf>,
    len: usize,
    pool: mpsc::UnboundedSender<AlignedBuf>,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        self.buf
            .as_ref()
            .map_or(&[], |buf| &buf.as_slice()[..self.len])
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let _ = self.pool.send(buf); // the pool is gone once the stream ended
        }
    }
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
    path: PathBuf,
    direct: bool,
    limit: Option<u64>,
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
            path: target.path.clone(),
            direct: target.direct,
            limit: target.limit,
            offset: 0,
        })
    }

    /// Writes one block at the current offset. Only the last block may be short;
    /// with `O_DIRECT` a length that is not a multiple of 512 goes through the page
    /// cache and is fsynced.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(limit) = self.limit {
            if self.offset + bytes.len() as u64 > limit {
                return Err(no_space(format!(
                    "the image is larger than the {limit} bytes of {}",
                    self.path.display()
                )));
            }
        }
        if !self.direct || bytes.len().is_multiple_of(512) {
            self.file.write_all_at(bytes, self.offset)?;
        } else {
            let tail = OpenOptions::new().write(true).open(&self.path)?;
            tail.write_all_at(bytes, self.offset)?;
            tail.sync_all()?;
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn finish(self) -> io::Result<u64> {
        self.file.sync_all()?;
        Ok(self.offset)
    }
}

fn write_loop(mut rx: mpsc::Receiver<Arc<Block>>, target: Target) -> io::Result<u64> {
    let mut writer = Writer::open(&target)?;
    while let Some(block) = rx.blocking_recv() {
        writer.write(block.bytes())?;
    }
    writer.finish()
}

fn hash_loop(mut rx: mpsc::Receiver<Arc<Block>>, mut hasher: Hasher) -> String {
    while let Some(block) = rx.blocking_recv() {
        hasher.update(block.bytes());
    }
    hasher.hex()
}

/// The download side of the pipeline: fills pool blocks and hands them on.
struct Filler {
    pool: mpsc::UnboundedSender<AlignedBuf>,
    free: mpsc::UnboundedReceiver<AlignedBuf>,
    current: Option<AlignedBuf>,
    fill: usize,
    to_hasher: mpsc::Sender<Arc<Block>>,
    to_writer: mpsc::Sender<Arc<Block>>,
}

impl Filler {
    /// Copies `data` into blocks; `false` once a worker is gone (its error tells why).
    async fn push(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let buf = match self.current.as_mut() {
                Some(buf) => buf,
                None => match self.free.recv().await {
                    Some(buf) => {
                        self.fill = 0;
                        self.current.insert(buf)
                    }
                    None => return false,
                },
            };
            let n = (WRITE_BLOCK - self.fill).min(data.len());
            buf.as_mut_slice()[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == WRITE_BLOCK && !self.send().await {
                return false;
            }
        }
        true
    }

    /// Hands the current block (if any bytes) to both workers.
    async fn send(&mut self) -> bool {
        let Some(buf) = self.current.take() else {
            return true;
        };
        let block = Arc::new(Block {
            buf: Some(buf),
            len: std::mem::take(&mut self.fill),
            pool: self.pool.clone(),
        });
        if block.len == 0 {
            return true;
        }
        self.to_hasher.send(block.clone()).await.is_ok() && self.to_writer.send(block).await.is_ok()
    }
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
    let (pool, free) = mpsc::unbounded_channel();
    for _ in 0..POOL_BLOCKS {
        let _ = pool.send(AlignedBuf::zeroed(WRITE_BLOCK));
    }
    let (to_writer, wrx) = mpsc::channel(POOL_BLOCKS);
    let (to_hasher, hrx) = mpsc::channel(POOL_BLOCKS);
    let writer = tokio::task::spawn_blocking(move || write_loop(wrx, target));
    let hashing = tokio::task::spawn_blocking(move || hash_loop(hrx, hasher));
    let mut filler = Filler {
        pool,
        free,
        current: None,
        fill: 0,
        to_hasher,
        to_writer,
    };
    let mut done = 0u64;
    let mut read_failure = None;
    loop {
        match fetcher.next_chunk(response).await {
            Ok(Some(chunk)) => {
                done += chunk.len() as u64;
                if !filler.push(&chunk).await {
                    break; // a worker failed; its error is read below
                }
                progress.update(done);
            }
            Ok(None) => {
                filler.send().await;
                break;
            }
            Err(failure) => {
                read_failure = Some(failure);
                break;
            }
        }
    }
    drop(filler);
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
