//! Readers and writers that hash (sha256) and count what passes through them, so nothing
//! downloaded is read back whole to be verified.

use std::io::Read;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

/// A reader that hashes (sha256) and counts what passes through it, and reports progress.
pub struct DigestReader<R, F> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    on_progress: F,
}

impl<R: Read, F: FnMut(u64)> DigestReader<R, F> {
    /// Wraps `inner`; `on_progress` gets the running byte count after each read.
    pub fn new(inner: R, on_progress: F) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            on_progress,
        }
    }

    /// sha256 (hex) and byte count of everything read.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read, F: FnMut(u64)> Read for DigestReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        (self.on_progress)(self.bytes);
        Ok(n)
    }
}

/// A writer (async) that hashes (sha256) and counts what passes through it into `inner`: a download
/// spooled to disk is digested as it is written, never read back whole.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.bytes
    }

    /// sha256 (hex) and byte count of everything written, and the writer.
    pub fn finish(self) -> (String, u64, W) {
        (hex::encode(self.hasher.finalize()), self.bytes, self.inner)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for DigestWriter<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = written {
            this.hasher.update(&buf[..n]);
            this.bytes += n as u64;
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A reader that copies what it reads into a writer (used to spool a remote source for a second pass).
pub struct TeeReader<R, W> {
    pub inner: R,
    pub copy: W,
}

impl<R: Read, W: std::io::Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_reader_hashes_everything() {
        let mut reader = DigestReader::new(&b"abc"[..], |_| {});
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let (sha, n) = reader.finish();
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
