//! The embedded lock store: an in-memory index behind a std mutex (never held across an
//! `.await`), written through to a SQLite table in the state directory by a thread of its own:
//! a LOCK waits (asynchronously) until its row is written, but SQLite's writes, and the WAL
//! checkpoints some of them run, never stall the event loop that serves other connections.

use super::{conflicts, Acquire, Lock, LockDepth, LockStore};
use crate::props::StoreError;
use crate::sqlite::connect;
use davit_proto::href::DavPath;
use davit_proto::xml::LockScope;
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock, injectable so that expiry can be tested without sleeping.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Locks in memory, persisted to SQLite.
#[derive(Clone)]
pub struct EmbeddedLockStore {
    inner: Arc<Mutex<Index>>,
    clock: Clock,
}

impl std::fmt::Debug for EmbeddedLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLockStore").finish_non_exhaustive()
    }
}

struct Index {
    /// Locks by root path, so covering and subtree queries are map lookups and range scans.
    by_root: BTreeMap<DavPath, Vec<Lock>>,
    by_token: HashMap<String, DavPath>,
    /// The writer thread's queue: writes are applied in the order they are sent, which is the
    /// order the index changed in (they are sent with the index locked).
    writer: std::sync::mpsc::Sender<(Vec<Write>, Done)>,
}

/// A change to the `locks` table.
enum Write {
    Persist(Box<Lock>),
    Forget(String),
}

/// Told when a set of writes is on disk (or why it is not).
type Done = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Writes each set of changes as one transaction, in the order received, until the store is
/// dropped.
fn writer_thread(
    mut db: Connection,
) -> Result<std::sync::mpsc::Sender<(Vec<Write>, Done)>, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel::<(Vec<Write>, Done)>();
    std::thread::Builder::new()
        .name("davit-locks-db".into())
        .spawn(move || {
            while let Ok((writes, done)) = rx.recv() {
                let _ = done.send(apply(&mut db, &writes));
            }
        })
        .map_err(|e| StoreError::Failed(format!("cannot start the lock writer: {e}")))?;
    Ok(tx)
}

fn apply(db: &mut Connection, writes: &[Write]) -> Result<(), StoreError> {
    let tx = db.transaction()?;
    for w in writes {
        match w {
            Write::Persist(lock) => persist(&tx, lock)?,
            Write::Forget(token) => {
                tx.execute("DELETE FROM locks WHERE token = ?1", [token])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn persist(db: &Connection, lock: &Lock) -> Result<(), StoreError> {
    db.execute(
        "INSERT OR REPLACE INTO locks
             (token, root, scope, depth, owner, timeout, expires, principal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            lock.token,
            lock.root.as_str(),
            lock.scope.as_str(),
            if lock.depth == LockDepth::Zero {
                "0"
            } else {
                "infinity"
            },
            lock.owner,
            lock.timeout.map(|t| t.as_secs() as i64),
            lock.expires.map(to_secs),
            lock.principal,
        ],
    )?;
    Ok(())
}

/// Waits for the writer to have written a set of changes.
async fn written(
    done: tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
) -> Result<(), StoreError> {
    done.await
        .unwrap_or_else(|_| Err(StoreError::Failed("the lock writer stopped".into())))
}

impl From<std::sync::PoisonError<std::sync::MutexGuard<'_, Index>>> for StoreError {
    fn from(_: std::sync::PoisonError<std::sync::MutexGuard<'_, Index>>) -> Self {
        StoreError::Failed("lock store poisoned".into())
    }
}

fn to_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl EmbeddedLockStore {
    /// Opens the store in `file` (shared with the property store is fine), dropping locks
    /// that expired while the server was down.
    pub fn open(file: &Path) -> Result<EmbeddedLockStore, StoreError> {
        Self::open_with_clock(file, Arc::new(SystemTime::now))
    }

    /// [`open`](Self::open) with a custom clock.
    pub fn open_with_clock(file: &Path, clock: Clock) -> Result<EmbeddedLockStore, StoreError> {
        let db = connect(file)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS locks (
                 token TEXT PRIMARY KEY,
                 root TEXT NOT NULL,
                 scope TEXT NOT NULL,
                 depth TEXT NOT NULL,
                 owner TEXT,
                 timeout INTEGER,
                 expires INTEGER,
                 principal TEXT
             );",
        )?;
        migrate(&db)?;
        let now = clock();
        db.execute(
            "DELETE FROM locks WHERE expires IS NOT NULL AND expires <= ?1",
            [to_secs(now)],
        )?;
        let loaded: Vec<Lock> = {
            let mut stmt = db.prepare(
                "SELECT token, root, scope, depth, owner, timeout, expires, principal
                     FROM locks",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (token, root, scope, depth, owner, timeout, expires, principal) = row?;
                let Ok(root) = parse_stored_path(&root) else {
                    continue;
                };
                out.push(Lock {
                    token,
                    root,
                    scope: if scope == "shared" {
                        LockScope::Shared
                    } else {
                        LockScope::Exclusive
                    },
                    depth: if depth == "0" {
                        LockDepth::Zero
                    } else {
                        LockDepth::Infinity
                    },
                    owner,
                    timeout: timeout.map(|s| Duration::from_secs(s.max(0) as u64)),
                    expires: expires.map(|s| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)),
                    principal,
                });
            }
            out
        };
        let mut index = Index {
            by_root: BTreeMap::new(),
            by_token: HashMap::new(),
            writer: writer_thread(db)?,
        };
        for lock in loaded {
            index.insert_mem(lock);
        }
        Ok(EmbeddedLockStore {
            inner: Arc::new(Mutex::new(index)),
            clock,
        })
    }
}

/// Brings a `locks` table written by an older davit up to date: the `principal` column came
/// later (its locks were all taken without authentication, so NULL is right for them).
fn migrate(db: &Connection) -> Result<(), StoreError> {
    let has_principal = {
        let mut stmt = db.prepare("SELECT name FROM pragma_table_info('locks')")?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut found = false;
        for name in names {
            found |= name? == "principal";
        }
        found
    };
    if !has_principal {
        db.execute_batch("ALTER TABLE locks ADD COLUMN principal TEXT")?;
    }
    Ok(())
}

/// Stored roots are decoded paths; rebuild them segment by segment so they are validated again.
fn parse_stored_path(s: &str) -> Result<DavPath, davit_proto::href::PathError> {
    let mut p = DavPath::root();
    for seg in s.split('/').filter(|x| !x.is_empty()) {
        p = p.join(seg)?;
    }
    Ok(p)
}

impl Index {
    fn insert_mem(&mut self, lock: Lock) {
        self.by_token.insert(lock.token.clone(), lock.root.clone());
        self.by_root
            .entry(lock.root.clone())
            .or_default()
            .push(lock);
    }

    fn remove_mem(&mut self, token: &str) -> Option<Lock> {
        let root = self.by_token.remove(token)?;
        let list = self.by_root.get_mut(&root)?;
        let pos = list.iter().position(|l| l.token == token)?;
        let lock = list.remove(pos);
        if list.is_empty() {
            self.by_root.remove(&root);
        }
        Some(lock)
    }

    fn covering(&self, path: &DavPath, now: SystemTime) -> Vec<Lock> {
        let mut out = Vec::new();
        if self.by_root.is_empty() {
            // The common case, asked once per listed resource: no walk up the path.
            return out;
        }
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if let Some(list) = self.by_root.get(&p) {
                out.extend(
                    list.iter()
                        .filter(|l| l.covers(path) && !l.expired(now))
                        .cloned(),
                );
            }
            at = p.parent();
        }
        out
    }

    fn under(&self, path: &DavPath, now: SystemTime) -> Vec<Lock> {
        self.by_root
            .range(path.clone()..)
            .take_while(|(root, _)| root.as_str().starts_with(path.as_str()))
            .filter(|(root, _)| root.starts_with(path))
            .flat_map(|(_, list)| list.iter().filter(|l| !l.expired(now)).cloned())
            .collect()
    }

    /// Hands `writes` to the writer thread (call with the index locked, so that the table
    /// changes in the order the index did); await the answer with the index unlocked.
    fn write(&self, writes: Vec<Write>) -> tokio::sync::oneshot::Receiver<Result<(), StoreError>> {
        let (done, answer) = tokio::sync::oneshot::channel();
        if let Err(std::sync::mpsc::SendError((_, done))) = self.writer.send((writes, done)) {
            let _ = done.send(Err(StoreError::Failed("the lock writer stopped".into())));
        }
        answer
    }
}

impl LockStore for EmbeddedLockStore {
    async fn covering(&self, path: &DavPath) -> Result<Vec<Lock>, StoreError> {
        let now = (self.clock)();
        Ok(self.inner.lock()?.covering(path, now))
    }

    async fn under(&self, path: &DavPath) -> Result<Vec<Lock>, StoreError> {
        let now = (self.clock)();
        Ok(self.inner.lock()?.under(path, now))
    }

    async fn acquire(&self, lock: Lock) -> Result<Acquire, StoreError> {
        let now = (self.clock)();
        // The index is changed and the writes queued under its lock; the wait for the disk
        // is outside it.
        let done = {
            let mut index = self.inner.lock()?;
            let mut in_way: Vec<Lock> = index
                .covering(&lock.root, now)
                .into_iter()
                .filter(|l| conflicts(l.scope, lock.scope))
                .collect();
            if lock.depth == LockDepth::Infinity {
                in_way.extend(
                    index
                        .under(&lock.root, now)
                        .into_iter()
                        .filter(|l| l.root != lock.root && conflicts(l.scope, lock.scope)),
                );
            }
            if !in_way.is_empty() {
                return Ok(Acquire::Conflict(in_way));
            }
            // Expired locks at this root are dropped now rather than left to pile up.
            let stale: Vec<String> = index
                .by_root
                .get(&lock.root)
                .map(|l| {
                    l.iter()
                        .filter(|l| l.expired(now))
                        .map(|l| l.token.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut writes = Vec::with_capacity(stale.len() + 1);
            for t in stale {
                index.remove_mem(&t);
                writes.push(Write::Forget(t));
            }
            writes.push(Write::Persist(Box::new(lock.clone())));
            index.insert_mem(lock.clone());
            index.write(writes)
        };
        if let Err(e) = written(done).await {
            // Not on disk: not granted either.
            self.inner.lock()?.remove_mem(&lock.token);
            return Err(e);
        }
        Ok(Acquire::Granted(lock))
    }

    async fn get(&self, token: &str) -> Result<Option<Lock>, StoreError> {
        let now = (self.clock)();
        let index = self.inner.lock()?;
        let Some(root) = index.by_token.get(token) else {
            return Ok(None);
        };
        Ok(index
            .by_root
            .get(root)
            .and_then(|l| l.iter().find(|l| l.token == token && !l.expired(now)))
            .cloned())
    }

    async fn refresh(
        &self,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Lock>, StoreError> {
        let now = (self.clock)();
        let (done, refreshed) = {
            let mut index = self.inner.lock()?;
            let Some(mut lock) = index.remove_mem(token) else {
                return Ok(None);
            };
            if lock.expired(now) {
                (index.write(vec![Write::Forget(token.to_owned())]), None)
            } else {
                lock.timeout = timeout;
                lock.expires = timeout.map(|t| now + t);
                index.insert_mem(lock.clone());
                let done = index.write(vec![Write::Persist(Box::new(lock.clone()))]);
                (done, Some(lock))
            }
        };
        written(done).await?;
        Ok(refreshed)
    }

    async fn release(&self, token: &str) -> Result<bool, StoreError> {
        let done = {
            let mut index = self.inner.lock()?;
            if index.remove_mem(token).is_none() {
                return Ok(false);
            }
            index.write(vec![Write::Forget(token.to_owned())])
        };
        written(done).await?;
        Ok(true)
    }

    async fn release_tree(&self, path: &DavPath) -> Result<(), StoreError> {
        let done = {
            let mut index = self.inner.lock()?;
            let tokens: Vec<String> = index
                .by_root
                .range(path.clone()..)
                .take_while(|(root, _)| root.as_str().starts_with(path.as_str()))
                .filter(|(root, _)| root.starts_with(path))
                .flat_map(|(_, list)| list.iter().map(|l| l.token.clone()))
                .collect();
            if tokens.is_empty() {
                return Ok(());
            }
            let mut writes = Vec::with_capacity(tokens.len());
            for t in tokens {
                index.remove_mem(&t);
                writes.push(Write::Forget(t));
            }
            index.write(writes)
        };
        written(done).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    fn lock(
        token: &str,
        root: &str,
        scope: LockScope,
        depth: LockDepth,
        secs: Option<u64>,
        now: SystemTime,
    ) -> Lock {
        Lock {
            token: token.into(),
            root: p(root),
            scope,
            depth,
            owner: None,
            timeout: secs.map(Duration::from_secs),
            expires: secs.map(|s| now + Duration::from_secs(s)),
            principal: None,
        }
    }

    #[tokio::test]
    async fn conflicts_coverage_expiry_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("l.db");
        let t = Arc::new(AtomicU64::new(1_000_000));
        let tc = t.clone();
        let clock: Clock =
            Arc::new(move || UNIX_EPOCH + Duration::from_secs(tc.load(Ordering::SeqCst)));
        let now = clock();
        let s = EmbeddedLockStore::open_with_clock(&file, clock.clone()).unwrap();
        use LockDepth::*;
        use LockScope::*;
        assert!(matches!(
            s.acquire(lock("t1", "/c", Exclusive, Infinity, Some(10), now))
                .await
                .unwrap(),
            Acquire::Granted(_)
        ));
        // A member of an exclusively locked tree cannot be locked.
        assert!(matches!(
            s.acquire(lock("t2", "/c/x", Shared, Zero, None, now))
                .await
                .unwrap(),
            Acquire::Conflict(_)
        ));
        assert_eq!(s.covering(&p("/c/x/y")).await.unwrap().len(), 1);
        assert!(s.covering(&p("/cx")).await.unwrap().is_empty());
        // Shared locks coexist; an exclusive one over them conflicts.
        assert!(matches!(
            s.acquire(lock("s1", "/d/f", Shared, Zero, None, now))
                .await
                .unwrap(),
            Acquire::Granted(_)
        ));
        assert!(matches!(
            s.acquire(lock("s2", "/d/f", Shared, Zero, None, now))
                .await
                .unwrap(),
            Acquire::Granted(_)
        ));
        assert!(
            matches!(s.acquire(lock("e", "/d", Exclusive, Infinity, None, now)).await.unwrap(), Acquire::Conflict(c) if c.len() == 2)
        );
        assert_eq!(s.under(&p("/d")).await.unwrap().len(), 2);
        // Survives a restart.
        drop(s);
        let s = EmbeddedLockStore::open_with_clock(&file, clock.clone()).unwrap();
        assert!(s.get("t1").await.unwrap().is_some());
        // Expires on time, and then blocks nothing.
        t.fetch_add(11, Ordering::SeqCst);
        assert!(s.get("t1").await.unwrap().is_none());
        assert!(s.covering(&p("/c/x")).await.unwrap().is_empty());
        assert!(matches!(
            s.acquire(lock("t3", "/c/x", Exclusive, Zero, Some(5), clock()))
                .await
                .unwrap(),
            Acquire::Granted(_)
        ));
        let r = s
            .refresh("t3", Some(Duration::from_secs(100)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.seconds_left(clock()), Some(100));
        s.release_tree(&p("/d")).await.unwrap();
        assert!(s.get("s1").await.unwrap().is_none());
        assert!(s.release("t3").await.unwrap());
        assert!(!s.release("t3").await.unwrap());
    }

    #[tokio::test]
    async fn principal_survives_restart_and_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("l.db");
        let now = SystemTime::now();
        let s = EmbeddedLockStore::open(&file).unwrap();
        let mut l = lock(
            "a",
            "/f",
            LockScope::Exclusive,
            LockDepth::Zero,
            Some(60),
            now,
        );
        l.principal = Some("alice".into());
        assert!(matches!(s.acquire(l).await.unwrap(), Acquire::Granted(_)));
        let r = s
            .refresh("a", Some(Duration::from_secs(120)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.principal.as_deref(), Some("alice"));
        drop(s);
        let s = EmbeddedLockStore::open(&file).unwrap();
        let got = s.get("a").await.unwrap().unwrap();
        assert_eq!(got.principal.as_deref(), Some("alice"));
        assert_eq!(got.timeout, Some(Duration::from_secs(120)));
    }

    /// A `locks` table from before the principal column: opened, migrated, its locks kept
    /// (with no principal) and new ones stored with theirs.
    #[tokio::test]
    async fn an_old_table_gains_the_principal_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("locks.sqlite3");
        {
            let db = Connection::open(&file).unwrap();
            db.execute_batch(
                "CREATE TABLE locks (
                     token TEXT PRIMARY KEY,
                     root TEXT NOT NULL,
                     scope TEXT NOT NULL,
                     depth TEXT NOT NULL,
                     owner TEXT,
                     timeout INTEGER,
                     expires INTEGER
                 );
                 INSERT INTO locks VALUES
                     ('old', '/d', 'shared', 'infinity', '<me/>', NULL, NULL);",
            )
            .unwrap();
        }
        let s = EmbeddedLockStore::open(&file).unwrap();
        let old = s.get("old").await.unwrap().unwrap();
        assert_eq!(old.principal, None);
        assert_eq!(old.owner.as_deref(), Some("<me/>"));
        assert_eq!(old.scope, LockScope::Shared);
        assert_eq!(old.depth, LockDepth::Infinity);
        let mut l = lock(
            "new",
            "/d/x",
            LockScope::Shared,
            LockDepth::Zero,
            None,
            SystemTime::now(),
        );
        l.principal = Some("bob".into());
        assert!(matches!(s.acquire(l).await.unwrap(), Acquire::Granted(_)));
        drop(s);
        // Opening again finds the column there and does not add it twice.
        let s = EmbeddedLockStore::open(&file).unwrap();
        assert_eq!(
            s.get("new").await.unwrap().unwrap().principal.as_deref(),
            Some("bob")
        );
        assert!(s.get("old").await.unwrap().is_some());
    }
}
