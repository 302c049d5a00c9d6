//! The embedded property store: one SQLite file in the state directory.

use super::{DeadProp, PropOp, PropStore, StoreError, TreeScope};
use crate::sqlite::connect;
use davit_proto::href::DavPath;
use davit_proto::xml::QName;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Dead properties in SQLite (WAL mode). A std mutex serialises access; it is only ever held
/// on the blocking pool, never across an `.await`.
#[derive(Clone, Debug)]
pub struct SqlitePropStore {
    conn: Arc<Mutex<Connection>>,
    /// Connections for the reads of listings: in WAL mode readers wait neither for each other
    /// nor for the writer. `None` inside a batch's transaction, whose reads must see its own
    /// uncommitted writes.
    readers: Option<Arc<Readers>>,
    file: Arc<PathBuf>,
    /// False while the store has certainly never held a property: lookups then answer without
    /// touching SQLite, which is what most listings of most servers need.
    maybe_any: Arc<AtomicBool>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Failed(e.to_string())
    }
}

/// The WHERE clause selecting a path and everything below it. `?1` is the path, `?2` the path
/// with `/` appended and `?3` with `0` appended: every descendant sorts between the last two,
/// since `0` follows `/` in byte order.
const TREE: &str = "(path = ?1 OR (path >= ?2 AND path < ?3))";

fn tree_params(p: &DavPath) -> (String, String, String) {
    let s = p.as_str();
    if p.is_root() {
        // Everything: "/" itself and every "/x" sort between "/" and "0".
        (s.to_owned(), "/".to_owned(), "0".to_owned())
    } else {
        (s.to_owned(), format!("{s}/"), format!("{s}0"))
    }
}

/// A few read connections, each used by one blocking-pool task at a time; a listing waits
/// (asynchronously) for a turn rather than parking a blocking thread on a busy connection
/// (256 listings at once had parked about 290 threads on the one connection: 417 MiB).
#[derive(Debug)]
struct Readers {
    conns: Vec<Mutex<Connection>>,
    turn: tokio::sync::Semaphore,
}

impl Readers {
    fn open(file: &Path) -> Result<Readers, StoreError> {
        let n = std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).clamp(4, 8));
        let conns = (0..n)
            .map(|_| connect(file).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Readers {
            turn: tokio::sync::Semaphore::new(conns.len()),
            conns,
        })
    }

    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _turn = self
            .turn
            .acquire()
            .await
            .map_err(|_| StoreError::Failed("property store closed".into()))?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // With a turn, one connection is free; the first one is waited for only if a
            // turn's task has not let go of its connection yet.
            let mut guard = match readers.conns.iter().find_map(|c| c.try_lock().ok()) {
                Some(g) => g,
                None => readers.conns[0]
                    .lock()
                    .map_err(|_| StoreError::Failed("property store lock poisoned".into()))?,
            };
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("property store task failed: {e}")))?
    }
}

impl SqlitePropStore {
    /// Opens (creating if needed) the store at `file`.
    pub fn open(file: &Path) -> Result<SqlitePropStore, StoreError> {
        let conn = connect(file)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS props (
                 path TEXT NOT NULL,
                 ns TEXT NOT NULL,
                 local TEXT NOT NULL,
                 xml TEXT NOT NULL,
                 PRIMARY KEY (path, ns, local)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS batch_commits (id TEXT PRIMARY KEY);",
        )?;
        let any = conn
            .query_row("SELECT 1 FROM props LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some();
        Ok(SqlitePropStore {
            conn: Arc::new(Mutex::new(conn)),
            readers: Some(Arc::new(Readers::open(file)?)),
            file: Arc::new(file.to_path_buf()),
            maybe_any: Arc::new(AtomicBool::new(any)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Failed("property store lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("property store task failed: {e}")))?
    }

    /// True when any path in the store has properties (lets listings skip lookups entirely).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        self.with(|c| {
            let any: Option<i64> = c
                .query_row("SELECT 1 FROM props LIMIT 1", [], |r| r.get(0))
                .optional()?;
            Ok(any.is_none())
        })
        .await
    }
}

impl PropStore for SqlitePropStore {
    type Tx = SqlitePropStore;

    fn may_hold_any(&self) -> bool {
        self.maybe_any.load(Ordering::Acquire)
    }

    async fn begin(&self) -> Result<SqlitePropStore, StoreError> {
        let file = self.file.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = connect(&file)?;
            // IMMEDIATE takes the write lock now, so the batch cannot fail half-way on it.
            conn.execute_batch("BEGIN IMMEDIATE")?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("property store task failed: {e}")))??;
        Ok(SqlitePropStore {
            conn: Arc::new(Mutex::new(conn)),
            readers: None,
            file: self.file.clone(),
            maybe_any: self.maybe_any.clone(),
        })
    }

    async fn commit(&self, tx: SqlitePropStore, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        tx.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO batch_commits (id) VALUES (?1)",
                [id],
            )?;
            c.execute_batch("COMMIT")?;
            Ok(())
        })
        .await
    }

    async fn rollback(&self, tx: SqlitePropStore) -> Result<(), StoreError> {
        tx.with(|c| {
            c.execute_batch("ROLLBACK")?;
            Ok(())
        })
        .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn was_committed(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT 1 FROM batch_commits WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
        .await
    }

    async fn forget_batch(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM batch_commits WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn get_many(&self, paths: Vec<DavPath>) -> Result<Vec<Vec<DeadProp>>, StoreError> {
        if !self.maybe_any.load(Ordering::Acquire) {
            return Ok(vec![Vec::new(); paths.len()]);
        }
        let read = move |c: &mut Connection| {
            // One read transaction for the whole batch, not one per path.
            let tx = c.savepoint()?;
            let mut stmt = tx.prepare_cached("SELECT ns, local, xml FROM props WHERE path = ?1")?;
            let mut out = Vec::with_capacity(paths.len());
            for p in &paths {
                let rows = stmt.query_map([p.as_str()], |r| {
                    Ok(DeadProp {
                        name: QName::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                        xml: r.get(2)?,
                    })
                })?;
                out.push(rows.collect::<Result<Vec<_>, _>>()?);
            }
            drop(stmt);
            tx.commit()?;
            Ok(out)
        };
        match &self.readers {
            Some(readers) => readers.with(read).await,
            None => self.with(read).await,
        }
    }

    async fn patch(&self, path: &DavPath, ops: Vec<PropOp>) -> Result<(), StoreError> {
        if ops.iter().any(|op| matches!(op, PropOp::Set(_))) {
            // Set before writing: a reader that sees the row must also see the flag.
            self.maybe_any.store(true, Ordering::Release);
        }
        let path = path.as_str().to_owned();
        self.with(move |c| {
            let tx = c.savepoint()?;
            for op in ops {
                match op {
                    PropOp::Set(p) => {
                        tx.execute(
                            "INSERT OR REPLACE INTO props (path, ns, local, xml) VALUES (?1, ?2, ?3, ?4)",
                            params![path, p.name.ns, p.name.local, p.xml],
                        )?;
                    }
                    PropOp::Remove(n) => {
                        tx.execute(
                            "DELETE FROM props WHERE path = ?1 AND ns = ?2 AND local = ?3",
                            params![path, n.ns, n.local],
                        )?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn copy(&self, from: &DavPath, to: &DavPath, scope: TreeScope) -> Result<(), StoreError> {
        if !self.maybe_any.load(Ordering::Acquire) {
            // Nothing stored anywhere: no write transaction (PUT of a new file asks this).
            return Ok(());
        }
        let (a, b, c3) = tree_params(from);
        let (from_len, to) = (from.as_str().chars().count() as i64, to.as_str().to_owned());
        self.with(move |c| {
            let tx = c.savepoint()?;
            if scope == TreeScope::Resource {
                tx.execute(
                    "INSERT OR REPLACE INTO props (path, ns, local, xml)
                     SELECT ?2, ns, local, xml FROM props WHERE path = ?1",
                    params![a, to],
                )?;
            } else {
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO props (path, ns, local, xml)
                         SELECT ?4 || substr(path, ?5 + 1), ns, local, xml FROM props WHERE {TREE}"
                    ),
                    params![a, b, c3, to, from_len],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn rename(&self, from: &DavPath, to: &DavPath) -> Result<(), StoreError> {
        if !self.maybe_any.load(Ordering::Acquire) {
            // Nothing stored anywhere: no write transaction (PUT of a new file asks this).
            return Ok(());
        }
        let (a, b, c3) = tree_params(from);
        let (from_len, to) = (from.as_str().chars().count() as i64, to.as_str().to_owned());
        self.with(move |c| {
            c.execute(
                &format!(
                    "UPDATE OR REPLACE props SET path = ?4 || substr(path, ?5 + 1) WHERE {TREE}"
                ),
                params![a, b, c3, to, from_len],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, path: &DavPath, keep: Vec<DavPath>) -> Result<(), StoreError> {
        if !self.maybe_any.load(Ordering::Acquire) {
            // Nothing stored anywhere: no write transaction (PUT of a new file asks this).
            return Ok(());
        }
        let (a, b, c3) = tree_params(path);
        self.with(move |c| {
            if keep.is_empty() {
                c.execute(
                    &format!("DELETE FROM props WHERE {TREE}"),
                    params![a, b, c3],
                )?;
                return Ok(());
            }
            // Rare (a partly failed DELETE): list the candidates and spare the kept ones.
            let tx = c.savepoint()?;
            let paths: Vec<String> = {
                let mut stmt =
                    tx.prepare(&format!("SELECT DISTINCT path FROM props WHERE {TREE}"))?;
                let rows = stmt.query_map(params![a, b, c3], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for p in paths {
                if !keep.iter().any(|k| k.as_str() == p) {
                    tx.execute("DELETE FROM props WHERE path = ?1", [p])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    fn prop(local: &str, v: &str) -> PropOp {
        PropOp::Set(DeadProp {
            name: QName::new("urn:z", local),
            xml: format!("<z:{local} xmlns:z=\"urn:z\">{v}</z:{local}>"),
        })
    }

    #[tokio::test]
    async fn tree_operations() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqlitePropStore::open(&dir.path().join("p.db")).unwrap();
        assert!(s.is_empty().await.unwrap());
        s.patch(&p("/a"), vec![prop("x", "1"), prop("y", "2")])
            .await
            .unwrap();
        s.patch(&p("/a/b"), vec![prop("x", "3")]).await.unwrap();
        s.patch(&p("/ab"), vec![prop("x", "4")]).await.unwrap();
        s.patch(&p("/a"), vec![PropOp::Remove(QName::new("urn:z", "y"))])
            .await
            .unwrap();

        s.copy(&p("/a"), &p("/c"), TreeScope::Tree).await.unwrap();
        let got = s
            .get_many(vec![p("/c"), p("/c/b"), p("/cb")])
            .await
            .unwrap();
        assert_eq!(got[0].len(), 1);
        assert!(got[1][0].xml.contains('3'));
        assert!(got[2].is_empty());

        s.rename(&p("/a"), &p("/m")).await.unwrap();
        let got = s
            .get_many(vec![p("/a"), p("/a/b"), p("/m/b"), p("/ab")])
            .await
            .unwrap();
        assert!(got[0].is_empty() && got[1].is_empty());
        assert_eq!(got[2].len(), 1);
        assert_eq!(got[3].len(), 1, "a sibling sharing the prefix is untouched");

        s.delete(&p("/m"), vec![p("/m/b")]).await.unwrap();
        let got = s.get_many(vec![p("/m"), p("/m/b")]).await.unwrap();
        assert!(got[0].is_empty());
        assert_eq!(got[1].len(), 1);
        s.delete(&DavPath::root(), vec![]).await.unwrap();
        assert!(s.is_empty().await.unwrap());
    }
}
