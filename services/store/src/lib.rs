//! Local durable state for every heatnet process.
//!
//! sled 0.34 sits behind this small API so that it can be replaced without
//! touching the processes. Rules the API keeps:
//! - a directory belongs to one process identity (`kind` + `identity`, e.g.
//!   gateway `s01`); opening someone else's directory, or a directory that is
//!   not a heatnet store, is refused with a clear error;
//! - writes are durable only after [`Store::flush`] returns: callers acknowledge
//!   nothing before that;
//! - a [`Batch`] applies to one table atomically.

use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

/// Format marker written into every store.
pub const FORMAT: &str = "heatnet-store-v1";
const META_TREE: &str = "__heatnet_meta";
/// Owner of a store (format, kind, identity, one a line), beside sled's files.
const MARKER_FILE: &str = "heatnet-store";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "store at {path} is locked by another process (waited {waited_ms} ms): stop it or give this process its own data directory"
    )]
    Locked { path: PathBuf, waited_ms: u64 },
    #[error(
        "{path} is not a heatnet store (it holds data but no heatnet marker); give an empty or heatnet data directory"
    )]
    Foreign { path: PathBuf },
    #[error("{path} holds a store of format {found:?}, this build reads {FORMAT:?}")]
    Format { path: PathBuf, found: String },
    #[error(
        "{path} belongs to {found_kind} {found_identity:?}, not {kind} {identity:?}: give each process its own data directory"
    )]
    Identity {
        path: PathBuf,
        kind: String,
        identity: String,
        found_kind: String,
        found_identity: String,
    },
    #[error("storage failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored value under {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "disk nearly full under {path}: {free_bytes} bytes free, writes need {min_free_bytes} left; nothing was written: free space there (the last durable state stands)"
    )]
    DiskLow {
        path: PathBuf,
        free_bytes: u64,
        min_free_bytes: u64,
    },
}

impl StoreError {
    /// The disk is (nearly) full: nothing was written, and the same write
    /// succeeds once space is freed. Callers keep running on what they
    /// hold and try again later, rather than stopping.
    pub fn is_disk_low(&self) -> bool {
        matches!(self, StoreError::DiskLow { .. })
    }
}

/// How long [`Store::open`] waits for another holder of the directory lock.
///
/// sled releases its file lock only when its background flusher lets go of
/// the database, which can be a few hundred milliseconds after the last handle
/// was dropped (a restart inside one process, or tests). A live process that
/// keeps the directory is reported as [`StoreError::Locked`] after this.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_waiting_for_lock(
    dir: &Path,
    cache_bytes: u64,
    wait: std::time::Duration,
) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                if started.elapsed() >= wait {
                    return Err(StoreError::Locked {
                        path: dir.to_path_buf(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            Err(source) => {
                return Err(StoreError::Open {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// What a store holds and for whom.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The kind of process: "gateway", "optimizer", "simulator".
    pub kind: String,
    /// The identity of the process within its kind (gateway id, ...).
    pub identity: String,
    /// Page cache budget, bytes. Keep it small on edge gateways.
    pub cache_bytes: u64,
    /// Free space left on the store's disk below which writes are refused
    /// ([`StoreError::DiskLow`]), bytes; 0: never refused. sled 0.34 does
    /// not survive running out of space mid-write (measured: stores that
    /// filled a disk would not open again, "Read corrupted data"), so a
    /// store stops writing while its last durable state is whole.
    pub min_free_bytes: u64,
}

/// [`StoreConfig::min_free_bytes`] unless a process says otherwise: room
/// for sled's segment and blob writes of every store sharing the disk.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: String::new(),
            identity: String::new(),
            cache_bytes: 16 << 20,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// Bytes free for an unprivileged writer on the disk that holds `path`.
pub fn disk_free_bytes(path: &Path) -> std::io::Result<u64> {
    fs2::available_space(path)
}

/// How long a reading of the disk's free space is trusted.
const ROOM_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// The guard on a store's disk space, shared by its tables.
struct Room {
    path: PathBuf,
    min_free_bytes: std::sync::atomic::AtomicU64,
    /// The last reading: when, and the bytes free then.
    read: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl Room {
    /// Refuses a write when the disk has less than `min_free_bytes` free.
    /// A disk whose free space cannot be read is not refused.
    fn check(&self) -> Result<(), StoreError> {
        let min_free_bytes = self
            .min_free_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if min_free_bytes == 0 {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let mut read = match self.read.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        let free = match *read {
            Some((at, free)) if now.duration_since(at) < ROOM_RECHECK => free,
            _ => match disk_free_bytes(&self.path) {
                Ok(free) => {
                    *read = Some((now, free));
                    free
                }
                Err(_) => return Ok(()),
            },
        };
        if free < min_free_bytes {
            return Err(StoreError::DiskLow {
                path: self.path.clone(),
                free_bytes: free,
                min_free_bytes,
            });
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    flushes: std::sync::Arc<FlushGate>,
    room: std::sync::Arc<Room>,
}

/// One flush at a time per store, shared by every caller.
///
/// sled 0.34 runs each `flush_async` on its own small thread pool, and the
/// flush waits for log writes that need a thread of that same pool: enough
/// concurrent flushes (the optimizer's ingest, audit, alarms and forecasts at
/// once) take every thread and wait forever. Measured: the optimizer of the
/// 127-gateway city stopped answering after a few minutes in lockstep, every
/// sled thread parked in `make_stable`. So flushes queue here, and a caller
/// whose writes a flush started after its request has already covered does
/// not flush again (group commit).
#[derive(Default)]
struct FlushGate {
    gate: tokio::sync::Mutex<()>,
    /// Flush requests made so far.
    requested: std::sync::atomic::AtomicU64,
    /// Every request numbered up to this is durable.
    covered: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (or creates) the store in `dir` and checks that it belongs to `cfg`.
    pub fn open(dir: &Path, cfg: &StoreConfig) -> Result<Self, StoreError> {
        let had_files = dir.exists()
            && std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
        let looks_like_sled = dir.join("conf").exists() && dir.join("db").exists();
        if had_files && !looks_like_sled {
            return Err(StoreError::Foreign {
                path: dir.to_path_buf(),
            });
        }
        // The marker file names the owner without opening sled (which may
        // rewrite its files while recovering): a directory that belongs to
        // someone else is refused before anything in it is touched.
        let marker_path = dir.join(MARKER_FILE);
        let marker = std::fs::read_to_string(&marker_path).ok();
        if let Some(m) = &marker {
            let mut lines = m.lines();
            let (format, kind, identity) = (lines.next(), lines.next(), lines.next());
            if format != Some(FORMAT) {
                return Err(StoreError::Format {
                    path: dir.to_path_buf(),
                    found: format.unwrap_or_default().to_string(),
                });
            }
            if kind != Some(cfg.kind.as_str()) || identity != Some(cfg.identity.as_str()) {
                return Err(StoreError::Identity {
                    path: dir.to_path_buf(),
                    kind: cfg.kind.clone(),
                    identity: cfg.identity.clone(),
                    found_kind: kind.unwrap_or_default().to_string(),
                    found_identity: identity.unwrap_or_default().to_string(),
                });
            }
        }
        let db = open_waiting_for_lock(dir, cfg.cache_bytes, LOCK_WAIT)?;
        let meta = db.open_tree(META_TREE)?;
        let get = |k: &str| -> Result<Option<String>, StoreError> {
            Ok(meta
                .get(k)?
                .map(|v| String::from_utf8_lossy(&v).into_owned()))
        };
        match get("format")? {
            None => {
                let user_trees = db.tree_names().len();
                // A fresh sled db has the default tree and our meta tree.
                if user_trees > 2 || !db.is_empty() {
                    return Err(StoreError::Foreign {
                        path: dir.to_path_buf(),
                    });
                }
                meta.insert("format", FORMAT)?;
                meta.insert("kind", cfg.kind.as_str())?;
                meta.insert("identity", cfg.identity.as_str())?;
                db.flush()?;
            }
            Some(found) if found != FORMAT => {
                return Err(StoreError::Format {
                    path: dir.to_path_buf(),
                    found,
                });
            }
            Some(_) => {
                let found_kind = get("kind")?.unwrap_or_default();
                let found_identity = get("identity")?.unwrap_or_default();
                if found_kind != cfg.kind || found_identity != cfg.identity {
                    return Err(StoreError::Identity {
                        path: dir.to_path_buf(),
                        kind: cfg.kind.clone(),
                        identity: cfg.identity.clone(),
                        found_kind,
                        found_identity,
                    });
                }
            }
        }
        if marker.is_none() {
            let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
            let text = format!("{FORMAT}\n{}\n{}\n", cfg.kind, cfg.identity);
            std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, &marker_path))
                .map_err(|e| StoreError::Open {
                    path: dir.to_path_buf(),
                    source: sled::Error::Io(e),
                })?;
        }
        Ok(Self {
            db,
            path: dir.to_path_buf(),
            flushes: std::sync::Arc::new(FlushGate::default()),
            room: std::sync::Arc::new(Room {
                path: dir.to_path_buf(),
                min_free_bytes: std::sync::atomic::AtomicU64::new(cfg.min_free_bytes),
                read: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes [`StoreConfig::min_free_bytes`] for every table of the store.
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.room
            .min_free_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn table(&self, name: &str) -> Result<Table, StoreError> {
        Ok(Table {
            tree: self.db.open_tree(name)?,
            room: self.room.clone(),
        })
    }

    /// Makes every write so far durable. Blocks: call from a blocking context.
    pub fn flush(&self) -> Result<usize, StoreError> {
        Ok(self.db.flush()?)
    }

    /// Makes every write so far durable, on tokio's blocking pool (must be
    /// called inside a tokio runtime). Flushes of one store run one at a time
    /// (see [`FlushGate`]); a flush that started after this call covers it.
    ///
    /// Not sled's own `flush_async`: concurrent calls of it deadlock in sled
    /// 0.34 (spacejam/sled#1308: its flushes wait on IO buffers that need the
    /// same small thread pool they occupy).
    pub async fn flush_async(&self) -> Result<usize, StoreError> {
        use std::sync::atomic::Ordering;
        let f = &self.flushes;
        let ticket = f.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _one_at_a_time = f.gate.lock().await;
        if f.covered.load(Ordering::SeqCst) >= ticket {
            return Ok(0);
        }
        // Every request numbered so far made its writes before asking.
        let upto = f.requested.load(Ordering::SeqCst);
        let db = self.db.clone();
        let bytes = match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(r) => r?,
            Err(e) => {
                return Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(
                    format!("flush task failed: {e}"),
                ))));
            }
        };
        f.covered.fetch_max(upto, Ordering::SeqCst);
        Ok(bytes)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// The owner (kind, identity) named by the marker of the store in `dir`,
    /// read without opening it; `None` if `dir` holds no heatnet store.
    pub fn owner_of(dir: &Path) -> Option<(String, String)> {
        let text = std::fs::read_to_string(dir.join(MARKER_FILE)).ok()?;
        let mut lines = text.lines();
        let (_format, kind, identity) = (lines.next()?, lines.next()?, lines.next()?);
        Some((kind.to_string(), identity.to_string()))
    }

    /// What the store holds, by table and key prefix (the key up to its first
    /// `/`, or its first byte when that is not readable text): entries and
    /// their bytes, the live data against which [`Store::size_on_disk`]
    /// shows sled's overhead. Reads every entry: slow on a large store.
    pub fn usage(&self) -> Result<Vec<PrefixUsage>, StoreError> {
        let mut out: Vec<PrefixUsage> = Vec::new();
        for name in self.db.tree_names() {
            let table = String::from_utf8_lossy(&name).into_owned();
            let tree = self.db.open_tree(&name)?;
            let mut by_prefix: std::collections::BTreeMap<String, PrefixUsage> =
                std::collections::BTreeMap::new();
            for entry in tree.iter() {
                let (k, v) = entry?;
                let prefix = key_prefix(&k);
                let u = by_prefix
                    .entry(prefix.clone())
                    .or_insert_with(|| PrefixUsage {
                        table: table.clone(),
                        prefix,
                        entries: 0,
                        key_bytes: 0,
                        value_bytes: 0,
                    });
                u.entries += 1;
                u.key_bytes += k.len() as u64;
                u.value_bytes += v.len() as u64;
            }
            out.extend(by_prefix.into_values());
        }
        Ok(out)
    }
}

/// What [`compact`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Compacted {
    pub entries: u64,
    pub live_bytes: u64,
    /// Bytes of the store's files before and after.
    pub files_before: u64,
    pub files_after: u64,
}

/// Entries copied per sled batch by [`compact`].
const COMPACT_BATCH: usize = 10_000;

/// Rewrites the store in `dir` into fresh files holding only its live entries,
/// then puts them in its place. sled 0.34 reuses the space of removed entries
/// only slowly, so a store whose old data is pruned (the optimizer's raw
/// telemetry) keeps growing on disk; this gives the space back.
///
/// The store's process must be stopped (sled's lock is taken, as by
/// [`Store::open`], which checks the owner). The copy is built beside it in
/// `<dir>.compacting` (free disk for the live data is needed), checked entry
/// for entry by sled's checksum, and only then swapped in: the original moves
/// to `<dir>.old` and is removed after the copy took its name. An interrupted
/// compaction leaves the original in `dir` (or, between the two renames, in
/// `<dir>.old`). `progress` is called with the entries copied so far.
pub fn compact(
    dir: &Path,
    cfg: &StoreConfig,
    mut progress: impl FnMut(u64),
) -> Result<Compacted, StoreError> {
    let sibling = |suffix: &str| {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        dir.with_file_name(name)
    };
    let (copy_dir, old_dir) = (sibling(".compacting"), sibling(".old"));
    let io = |path: &Path, e: std::io::Error| StoreError::Open {
        path: path.to_path_buf(),
        source: sled::Error::Io(e),
    };
    if old_dir.exists() {
        return Err(io(
            &old_dir,
            std::io::Error::other(format!(
                "{} is left from an interrupted compaction: if {} holds the store, remove it; else move it back to {}",
                old_dir.display(),
                dir.display(),
                dir.display()
            )),
        ));
    }
    let store = Store::open(dir, cfg)?;
    let files_before = dir_bytes(dir).map_err(|e| io(dir, e))?;
    if copy_dir.exists() {
        std::fs::remove_dir_all(&copy_dir).map_err(|e| io(&copy_dir, e))?;
    }
    let copy = sled::Config::new()
        .path(&copy_dir)
        .cache_capacity(64 << 20)
        .open()
        .map_err(|source| StoreError::Open {
            path: copy_dir.clone(),
            source,
        })?;
    let (mut entries, mut live_bytes) = (0u64, 0u64);
    for name in store.db.tree_names() {
        let from = store.db.open_tree(&name)?;
        let to = copy.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for kv in from.iter() {
            let (k, v) = kv?;
            live_bytes += (k.len() + v.len()) as u64;
            batch.insert(k, v);
            (entries, in_batch) = (entries + 1, in_batch + 1);
            if in_batch == COMPACT_BATCH {
                to.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
                progress(entries);
            }
        }
        to.apply_batch(batch)?;
    }
    copy.flush()?;
    let (want, got) = (store.db.checksum()?, copy.checksum()?);
    if want != got {
        drop(copy);
        let _ = std::fs::remove_dir_all(&copy_dir);
        return Err(StoreError::Corrupt {
            key: format!("(the copy in {})", copy_dir.display()),
            reason: format!(
                "checksum {got:08x}, the store's {want:08x}: the store is left as it was"
            ),
        });
    }
    std::fs::copy(dir.join(MARKER_FILE), copy_dir.join(MARKER_FILE))
        .map_err(|e| io(&copy_dir, e))?;
    drop(copy);
    drop(store);
    std::fs::rename(dir, &old_dir).map_err(|e| io(dir, e))?;
    std::fs::rename(&copy_dir, dir).map_err(|e| io(dir, e))?;
    std::fs::remove_dir_all(&old_dir).map_err(|e| io(&old_dir, e))?;
    let files_after = dir_bytes(dir).map_err(|e| io(dir, e))?;
    Ok(Compacted {
        entries,
        live_bytes,
        files_before,
        files_after,
    })
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Entries of one table sharing a key prefix (see [`Store::usage`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrefixUsage {
    pub table: String,
    pub prefix: String,
    pub entries: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

/// The key up to and with its first `/` if what comes before is readable
/// text of at most 32 bytes, else its first byte in hex (`0x..`).
fn key_prefix(key: &[u8]) -> String {
    let text = |b: &[u8]| b.iter().all(|c| c.is_ascii_graphic() && *c != b'/');
    match key.iter().position(|c| *c == b'/') {
        Some(i) if i <= 32 && text(&key[..i]) => String::from_utf8_lossy(&key[..=i]).into_owned(),
        _ if key.len() <= 32 && text(key) => String::from_utf8_lossy(key).into_owned(),
        _ => key
            .first()
            .map_or("(empty)".into(), |b| format!("0x{b:02x}..")),
    }
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A named keyspace of a store, ordered by key bytes.
///
/// Every write is refused with [`StoreError::DiskLow`] while the store's disk
/// is nearly full ([`StoreConfig::min_free_bytes`]); reads always work.
#[derive(Clone)]
pub struct Table {
    tree: sled::Tree,
    room: std::sync::Arc<Room>,
}

/// Writes applied to one table atomically.
#[derive(Default)]
pub struct Batch {
    inner: sled::Batch,
}

impl Batch {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.inner.insert(key.as_ref(), value.as_ref());
    }
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.inner.remove(key.as_ref());
    }
    pub fn insert_json<T: Serialize>(&mut self, key: impl AsRef<[u8]>, value: &T) {
        // Serializing our own plain data types cannot fail.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.insert(key, bytes);
    }
}

impl Table {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.room.check()?;
        self.tree.insert(key.as_ref(), value.as_ref())?;
        Ok(())
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.room.check()?;
        self.tree.remove(key)?;
        Ok(())
    }

    pub fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        self.room.check()?;
        self.tree.apply_batch(batch.inner)?;
        Ok(())
    }

    pub fn get_json<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<T>, StoreError> {
        let key = key.as_ref();
        match self.tree.get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                }),
        }
    }

    pub fn put_json<T: Serialize>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(key.as_ref()).into_owned(),
            reason: e.to_string(),
        })?;
        self.insert(key, bytes)
    }

    /// Entries with keys in `[from, ..)` that start with `prefix`, in key order.
    pub fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        let prefix = prefix.to_vec();
        self.tree
            .range(from.to_vec()..)
            .take_while(move |r| match r {
                Ok((k, _)) => k.starts_with(&prefix),
                Err(_) => true,
            })
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
    }

    /// Entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        self.tree.scan_prefix(prefix).map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        })
    }

    /// The last entry whose key starts with `prefix`.
    pub fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .tree
            .scan_prefix(prefix)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn first(&self) -> Result<Option<Entry>, StoreError> {
        Ok(self.tree.first()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn last(&self) -> Result<Option<Entry>, StoreError> {
        Ok(self.tree.last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// Big-endian key of a sequence number, so key order is numeric order.
pub fn seq_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number at the end of a key made by [`seq_key`].
pub fn seq_of_key(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_every_entry_and_gives_back_the_space_of_removed_ones() {
        let dir = tmp("compact");
        let cfg = StoreConfig {
            kind: "optimizer".into(),
            identity: "central".into(),
            cache_bytes: 1 << 20,
            ..StoreConfig::default()
        };
        {
            let s = Store::open(&dir, &cfg).unwrap();
            let t = s.table("telemetry").unwrap();
            for i in 0..20_000u64 {
                t.insert(seq_key(b"b/", i), [7u8; 1_000]).unwrap();
            }
            s.flush().unwrap();
            // The old 95 % pruned, as retention does.
            for i in 0..19_000u64 {
                t.remove(seq_key(b"b/", i)).unwrap();
            }
            s.table("meta").unwrap().insert("plan", "kept").unwrap();
            s.flush().unwrap();
        }
        let mut calls = 0;
        let c = compact(&dir, &cfg, |_| calls += 1).unwrap();
        // 1,000 batches, the meta entry, the owner's 3 marker entries.
        assert_eq!(c.entries, 1_004, "{c:?}");
        assert!(
            c.files_after * 4 < c.files_before,
            "{} bytes before, {} after",
            c.files_before,
            c.files_after
        );
        assert_eq!(calls, 0, "progress before 10,000 entries");
        let s = Store::open(&dir, &cfg).unwrap();
        let t = s.table("telemetry").unwrap();
        assert_eq!(t.len(), 1_000);
        assert_eq!(t.first().unwrap().unwrap().0, seq_key(b"b/", 19_000));
        assert_eq!(
            t.get(seq_key(b"b/", 19_999)).unwrap().unwrap(),
            vec![7u8; 1_000]
        );
        assert_eq!(
            s.table("meta").unwrap().get("plan").unwrap().unwrap(),
            b"kept"
        );
        drop(s);
        // Another owner is refused before anything is touched.
        let other = StoreConfig {
            identity: "other".into(),
            ..cfg.clone()
        };
        assert!(matches!(
            compact(&dir, &other, |_| ()),
            Err(StoreError::Identity { .. })
        ));
        let mut left = dir.file_name().unwrap().to_os_string();
        left.push(".compacting");
        assert!(!dir.with_file_name(left).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn usage_counts_entries_and_bytes_by_table_and_key_prefix() {
        let dir = tmp("usage");
        let cfg = StoreConfig {
            kind: "optimizer".into(),
            identity: "central".into(),
            cache_bytes: 1 << 20,
            ..StoreConfig::default()
        };
        let s = Store::open(&dir, &cfg).unwrap();
        assert_eq!(
            Store::owner_of(&dir),
            Some(("optimizer".into(), "central".into()))
        );
        let t = s.table("telemetry").unwrap();
        t.insert(seq_key(b"b/c0001/", 1), [0u8; 100]).unwrap();
        t.insert(seq_key(b"b/c0001/", 2), [0u8; 50]).unwrap();
        t.insert(b"h/c0001/2026", [0u8; 10]).unwrap();
        t.insert(seq_key(b"", 7), [0u8; 3]).unwrap();
        s.table("meta").unwrap().insert("plan", "x").unwrap();
        let u = s.usage().unwrap();
        let find = |table: &str, prefix: &str| {
            u.iter()
                .find(|p| p.table == table && p.prefix == prefix)
                .unwrap_or_else(|| panic!("no {table} {prefix} in {u:?}"))
        };
        let b = find("telemetry", "b/");
        assert_eq!((b.entries, b.key_bytes, b.value_bytes), (2, 32, 150));
        let h = find("telemetry", "h/");
        assert_eq!((h.entries, h.key_bytes, h.value_bytes), (1, 12, 10));
        // A binary key: named by its first byte.
        assert_eq!(find("telemetry", "0x00..").value_bytes, 3);
        assert_eq!(find("meta", "plan").entries, 1);
        assert_eq!(Store::owner_of(&dir.join("nothing")), None);
    }

    /// A disk with less free space than the store must leave refuses every
    /// write whole, names the directory and the numbers, and keeps what was
    /// there readable; the same writes go through once there is room.
    #[test]
    fn a_store_on_a_nearly_full_disk_refuses_writes_and_keeps_its_state() {
        let dir = tmp("disk-low");
        let roomy = cfg("simulator", "city");
        {
            let s = Store::open(&dir, &roomy).unwrap();
            s.table("state")
                .unwrap()
                .insert("snapshot", "good")
                .unwrap();
            s.flush().unwrap();
        }
        let full = StoreConfig {
            min_free_bytes: u64::MAX,
            ..roomy.clone()
        };
        let s = Store::open(&dir, &full).unwrap();
        let t = s.table("state").unwrap();
        let refused = [
            t.insert("snapshot", "torn"),
            t.remove("snapshot"),
            t.put_json("other", &1),
            {
                let mut b = Batch::default();
                b.insert("snapshot", "torn");
                b.insert("other", "x");
                t.apply(b)
            },
        ];
        for r in refused {
            let e = r.unwrap_err();
            assert!(e.is_disk_low(), "{e}");
            let text = e.to_string();
            assert!(text.contains(&dir.display().to_string()), "{text}");
            assert!(text.contains("free space there"), "{text}");
        }
        assert_eq!(t.get("snapshot").unwrap().unwrap(), b"good");
        assert_eq!(t.get("other").unwrap(), None);
        drop((t, s));
        let s = Store::open(&dir, &roomy).unwrap();
        let t = s.table("state").unwrap();
        t.insert("snapshot", "next").unwrap();
        assert_eq!(t.get("snapshot").unwrap().unwrap(), b"next");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn cfg(kind: &str, id: &str) -> StoreConfig {
        StoreConfig {
            kind: kind.into(),
            identity: id.into(),
            cache_bytes: 1 << 20,
            ..StoreConfig::default()
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("heatnet-store-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Many writers flushing at once, more than sled has flush threads: every
    /// flush returns (sled 0.34 alone can park them all for good) and every
    /// write is there after a reopen.
    #[test]
    fn many_concurrent_flushes_all_return_and_keep_every_write() {
        let dir = tmp("flushes");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        {
            let s = Store::open(&dir, &cfg("optimizer", "central")).unwrap();
            rt.block_on(async {
                let mut tasks = Vec::new();
                for w in 0..64u32 {
                    let s = s.clone();
                    tasks.push(tokio::spawn(async move {
                        let t = s.table("t").unwrap();
                        for i in 0..20u32 {
                            t.insert(format!("{w}/{i}"), [1u8; 64]).unwrap();
                            s.flush_async().await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    // A liveness bound, not a speed target.
                    tokio::time::timeout(std::time::Duration::from_secs(120), t)
                        .await
                        .expect("a flush never returned")
                        .unwrap();
                }
            });
        }
        let s = Store::open(&dir, &cfg("optimizer", "central")).unwrap();
        assert_eq!(s.table("t").unwrap().scan_prefix(b"").count(), 64 * 20);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopens_its_own_and_refuses_others() {
        let dir = tmp("identity");
        {
            let s = Store::open(&dir, &cfg("gateway", "s01")).unwrap();
            s.table("t").unwrap().insert("k", "v").unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(&dir, &cfg("gateway", "s01")).unwrap();
        assert_eq!(s.table("t").unwrap().get("k").unwrap(), Some(b"v".to_vec()));
        drop(s);
        let err = Store::open(&dir, &cfg("gateway", "s02"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("belongs to gateway \"s01\", not gateway \"s02\""),
            "{err}"
        );
        let err = Store::open(&dir, &cfg("optimizer", "s01"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not optimizer"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn waits_for_a_lock_that_is_let_go_and_names_one_that_is_not() {
        let dir = tmp("lock");
        let held = Store::open(&dir, &cfg("gateway", "s01")).unwrap();
        let err = open_waiting_for_lock(&dir, 1 << 20, std::time::Duration::from_millis(50))
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
        });
        let s = Store::open(&dir, &cfg("gateway", "s01")).unwrap();
        release.join().unwrap();
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refused_open_touches_nothing() {
        let dir = tmp("untouched");
        {
            let s = Store::open(&dir, &cfg("gateway", "s01")).unwrap();
            s.table("t").unwrap().insert("k", "v").unwrap();
            s.flush().unwrap();
        }
        let listing = || {
            let mut v: Vec<(String, u64, std::time::SystemTime)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let m = e.metadata().unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        m.len(),
                        m.modified().unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let before = listing();
        assert!(before.iter().any(|f| f.0 == MARKER_FILE));
        let err = Store::open(&dir, &cfg("gateway", "s02")).err().unwrap();
        assert!(matches!(err, StoreError::Identity { .. }), "{err}");
        assert_eq!(listing(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_directory_that_is_not_a_store() {
        let dir = tmp("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "hello").unwrap();
        let err = Store::open(&dir, &cfg("gateway", "s01")).err().unwrap();
        assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sequence_keys_sort_numerically_and_scan_by_prefix() {
        let dir = tmp("seq");
        let s = Store::open(&dir, &cfg("optimizer", "central")).unwrap();
        let t = s.table("b").unwrap();
        for seq in [1u64, 2, 10, 300, 256] {
            t.insert(seq_key(b"g1/", seq), b"x").unwrap();
        }
        t.insert(seq_key(b"g2/", 5), b"y").unwrap();
        let seqs: Vec<u64> = t
            .scan_prefix(b"g1/")
            .map(|r| seq_of_key(&r.unwrap().0).unwrap())
            .collect();
        assert_eq!(seqs, vec![1, 2, 10, 256, 300]);
        let last = t.last_with_prefix(b"g1/").unwrap().unwrap();
        assert_eq!(seq_of_key(&last.0), Some(300));
        let from: Vec<u64> = t
            .scan_from(b"g1/", &seq_key(b"g1/", 10))
            .map(|r| seq_of_key(&r.unwrap().0).unwrap())
            .collect();
        assert_eq!(from, vec![10, 256, 300]);
        let mut b = Batch::default();
        b.remove(seq_key(b"g1/", 1));
        b.insert_json(b"meta", &42u32);
        t.apply(b).unwrap();
        assert_eq!(t.get_json::<u32>(b"meta").unwrap(), Some(42));
        assert_eq!(t.get(seq_key(b"g1/", 1)).unwrap(), None);
        drop(t);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// sled's own `flush_async` deadlocked here (spacejam/sled#1308).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_flushes_all_complete() {
        let dir = tmp("concurrent-flush");
        let store = Store::open(&dir, &cfg("optimizer", "central")).unwrap();
        let t = store.table("t").unwrap();
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let (store, t) = (store.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                t.insert(i.to_be_bytes(), [1u8]).unwrap();
                store.flush_async().await.unwrap();
            }));
        }
        // A guard against a hang, not a speed requirement.
        let all = tokio::time::timeout(std::time::Duration::from_secs(120), async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert!(all.await.is_ok(), "concurrent flushes hung");
        assert_eq!(t.scan_prefix(b"").count(), 64);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
