//! The fetch-once store of the files the operator checks (model files, validation data sets): each
//! is downloaded once, streamed through sha256 into a file in the spool directory (`--spool-dir`,
//! an `emptyDir` with a `sizeLimit` in the Deployment), and the model check and the quality gate
//! both read that one copy. Memory holds a chunk at a time while downloading, whatever the URL
//! serves; the disk holds at most [`KEPT`] finished files, the ones being downloaded
//! ([`PARALLEL_DOWNLOADS`]) and the ones a quality-gate run is reading, each at most its limit.
//! A file is deleted when the store lets go of it and nothing reads it; the spool's files left in
//! the directory by an earlier process are deleted at start, so a crash leaves nothing behind that
//! grows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use model_store::digest::DigestWriter;
use model_store::{Fetcher, StoreAccess};
use tokio::sync::Semaphore;

use crate::budget::Budget;

/// Downloads running at once (more wait: many Predictors sharing one new model wait for the first
/// download, then find it kept).
pub const PARALLEL_DOWNLOADS: usize = 4;
/// Finished files kept for the next reader (the quality gate after the model check), most recent
/// first; an older one is deleted once nothing reads it.
pub const KEPT: usize = 4;
/// What one download holds in memory besides its file: hyper's read buffer (at most ~400 KiB), a
/// chunk, the file writer's buffer ([`WRITE_BUFFER`]) and TLS records.
pub const DOWNLOAD_MEMORY: u64 = 1 << 20;
/// What an `hdfs://` download holds: hdfs-native reads up to 100 packets of 64 KiB ahead of the
/// reader (`READ_PACKET_BUFFER_LEN` in its block reader), and the rest as above.
pub const HDFS_DOWNLOAD_MEMORY: u64 = 8 << 20;
/// The file writer's buffer.
const WRITE_BUFFER: usize = 64 << 10;
/// How the spool's file names start: at start only these are deleted, whatever else the
/// directory holds (a `--spool-dir` given by mistake loses nothing else).
const PREFIX: &str = "spooled-";

/// A downloaded file in the spool, deleted when the last holder drops it.
#[derive(Debug)]
pub struct Spooled {
    path: tempfile::TempPath,
    /// sha256 (hex) of its bytes, computed while they were written.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
}

impl Spooled {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, in memory (the caller has reserved `len` bytes and more).
    pub async fn read(&self) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(&self.path).await
    }
}

/// Why a file is not in the store.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// The download failed: the fetcher's (redacted) reason, or the budget's.
    Fetch(String),
    /// The bytes are not the pinned ones: their digest.
    Digest(String),
}

/// A file's key: its URL and pinned sha256.
type Key = (String, String);

/// The spool directory, the downloads and the files kept.
pub struct Spool {
    dir: PathBuf,
    fetcher: Fetcher,
    downloads: Semaphore,
    kept: Mutex<Vec<(Key, Arc<Spooled>)>>,
    /// Downloads started, for tests (a second reader of a kept file starts none).
    started: std::sync::atomic::AtomicU64,
    /// A temporary directory of its own ([`Spool::scratch`]), removed with the spool.
    _scratch: Option<tempfile::TempDir>,
}

impl Spool {
    /// A store in `dir` (created; rid of the files an earlier process spooled there), downloading
    /// with `fetcher`. NB: one process per directory (the Deployment's is an `emptyDir` per pod).
    pub fn new(dir: &Path, fetcher: Fetcher) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(PREFIX)
                && entry.file_type()?.is_file()
            {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            fetcher,
            downloads: Semaphore::new(PARALLEL_DOWNLOADS),
            kept: Mutex::new(Vec::new()),
            started: Default::default(),
            _scratch: None,
        })
    }

    /// A store in a new temporary directory, removed when the store is dropped (tests, tools).
    pub fn scratch(fetcher: Fetcher) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut spool = Self::new(dir.path(), fetcher)?;
        spool._scratch = Some(dir);
        Ok(spool)
    }

    /// The directory it spools to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Downloads started since the store was made.
    pub fn downloads_started(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn find(&self, key: &Key) -> Option<Arc<Spooled>> {
        let mut kept = self.kept.lock().expect("spool lock");
        let at = kept.iter().position(|(k, _)| k == key)?;
        let entry = kept.remove(at);
        let file = entry.1.clone();
        kept.insert(0, entry);
        Some(file)
    }

    fn keep(&self, key: Key, file: Arc<Spooled>) {
        let mut kept = self.kept.lock().expect("spool lock");
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, file));
        kept.truncate(KEPT);
    }

    /// Lets go of the file of `url` pinned at `sha256` (deleted once nothing reads it).
    pub fn forget(&self, url: &str, sha256: &str) {
        let key = (url.to_string(), sha256.to_string());
        self.kept
            .lock()
            .expect("spool lock")
            .retain(|(k, _)| *k != key);
    }

    /// The file at `url` whose sha256 is `sha256`: the kept copy, or downloaded now (at most
    /// `max_bytes`, with `access`, reserving [`DOWNLOAD_MEMORY`] (or [`HDFS_DOWNLOAD_MEMORY`]) from
    /// `budget` meanwhile) and
    /// kept. Bytes with another digest are refused with it and deleted.
    pub async fn get(
        &self,
        url: &str,
        sha256: &str,
        max_bytes: u64,
        access: &StoreAccess,
        budget: &Budget,
    ) -> Result<Arc<Spooled>, Refused> {
        let key = (url.to_string(), sha256.to_string());
        if let Some(file) = self.find(&key) {
            return Ok(file);
        }
        let _slot = self
            .downloads
            .acquire()
            .await
            .expect("semaphore never closed");
        // Another reconcile may have downloaded the same file while this one waited.
        if let Some(file) = self.find(&key) {
            return Ok(file);
        }
        let memory = match model_store::Location::parse(url) {
            Ok(model_store::Location::Hdfs(_)) => HDFS_DOWNLOAD_MEMORY,
            _ => DOWNLOAD_MEMORY,
        };
        let _memory = budget
            .reserve(memory, "a download")
            .await
            .map_err(Refused::Fetch)?;
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.download(url, max_bytes, access).await?;
        if file.sha256 != sha256 {
            return Err(Refused::Digest(file.sha256));
        }
        let file = Arc::new(file);
        self.keep(key, file.clone());
        Ok(file)
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        access: &StoreAccess,
    ) -> Result<Spooled, Refused> {
        let spool_failed =
            |e: std::io::Error| Refused::Fetch(format!("cannot write to the spool directory: {e}"));
        let (file, path) = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempfile_in(&self.dir)
            .map_err(spool_failed)?
            .into_parts();
        let mut file = tokio::fs::File::from_std(file);
        file.set_max_buf_size(WRITE_BUFFER);
        let mut out = DigestWriter::new(file);
        let len = self
            .fetcher
            .fetch_into(url, max_bytes, access, &mut out)
            .await
            .map_err(|e| Refused::Fetch(fetch_reason(e)))?;
        let (sha256, _, file) = out.finish();
        file.sync_all().await.map_err(spool_failed)?;
        Ok(Spooled { path, sha256, len })
    }
}

/// The fetcher's reason, without its own (equally redacted) "cannot read <url>".
fn fetch_reason(error: model_store::Error) -> String {
    match error {
        model_store::Error::Location { reason, .. } | model_store::Error::Read { reason, .. } => {
            reason
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spool(dir: &Path) -> Spool {
        Spool::new(dir, Fetcher::new(Duration::from_secs(5)).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_file_is_downloaded_once_kept_few_and_deleted_when_let_go() {
        let dir = tempfile::tempdir().unwrap();
        // What a crashed process spooled is removed at start; nothing else is.
        std::fs::write(dir.path().join("spooled-left.over"), b"x").unwrap();
        std::fs::write(dir.path().join("someone-elses"), b"x").unwrap();
        let spool = spool(dir.path());
        assert!(!dir.path().join("spooled-left.over").exists());
        std::fs::remove_file(dir.path().join("someone-elses")).unwrap();

        let store = model_store::testing::FileServer::start();
        let budget = Budget::new(16 << 20);
        let access = StoreAccess::default();
        let bytes = b"0123456789".to_vec();
        let sha = predictor::model::sha256_hex(&bytes);
        let url = store.put("/f", bytes.clone());
        let first = spool.get(&url, &sha, 10, &access, &budget).await.unwrap();
        let again = spool.get(&url, &sha, 10, &access, &budget).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(spool.downloads_started(), 1);
        assert_eq!(first.read().await.unwrap(), bytes);
        assert_eq!(
            budget.available(),
            16 << 20,
            "the download's memory is back"
        );

        // A wrong digest is refused with the actual one, and nothing stays on disk.
        let wrong = "0".repeat(64);
        assert_eq!(
            spool
                .get(&url, &wrong, 10, &access, &budget)
                .await
                .unwrap_err(),
            Refused::Digest(sha.clone())
        );
        // Past the limit: refused, nothing stays.
        let Refused::Fetch(reason) = spool
            .get(&url, &wrong, 9, &access, &budget)
            .await
            .unwrap_err()
        else {
            panic!("not a fetch failure")
        };
        assert_eq!(reason, "10 bytes is more than the 9-byte limit");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // Let go: deleted once the last reader drops it.
        let path = first.path().to_path_buf();
        spool.forget(&url, &sha);
        drop(again);
        assert!(path.exists(), "a reader still holds it");
        drop(first);
        assert!(!path.exists());

        // At most KEPT finished files stay.
        for i in 0..(KEPT + 3) {
            let body = format!("file {i}").into_bytes();
            let sha = predictor::model::sha256_hex(&body);
            let url = store.put(&format!("/f{i}"), body);
            spool.get(&url, &sha, 100, &access, &budget).await.unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), KEPT);
    }
}
