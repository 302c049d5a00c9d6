//! The embedded change log: one SQLite file in the state directory holding the last known
//! state of every member that a sync has covered (path, kind, fingerprint, the sequence number
//! of its last change, tombstone flag) and a one-row state (store id, sequence, generation,
//! pruning floor).

use super::{ChangeLog, LoggedChange, MemberState, Noted, Observed, Scope, Walk};
use crate::props::StoreError;
use crate::sqlite::connect;
use crate::storage::Kind;
use davit_proto::href::DavPath;
use davit_proto::xml::SyncLevel;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The change log in SQLite (WAL). A std mutex serialises access; it is only held on the
/// blocking pool.
#[derive(Clone, Debug)]
pub struct SqliteChangeLog {
    conn: Arc<Mutex<Connection>>,
    store_id: Arc<str>,
    /// One walk at a time (see [`ChangeLog::begin_walk`]).
    walks: Arc<tokio::sync::Mutex<()>>,
    /// False until the first walk: until then nobody has synced, and writes need no record.
    active: Arc<AtomicBool>,
    max_tombstones: u64,
    /// Writes through davit not applied yet: a write never waits for the log. Every other
    /// access applies them first (under the connection's lock), so reads see them in order.
    queue: Arc<Mutex<Vec<Noted>>>,
    /// True while a task applying the queue is scheduled.
    flushing: Arc<AtomicBool>,
}

/// Sequence number, walk generation and pruning floor, read and written in a transaction.
struct Counters {
    seq: u64,
    generation: u64,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Failed(e.to_string())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `(path, lower, upper)`: every strict descendant of `p` sorts in `lower..upper`.
fn below(p: &DavPath) -> (String, String, String) {
    let s = p.as_str();
    if p.is_root() {
        (s.to_owned(), "/".to_owned(), "0".to_owned())
    } else {
        (s.to_owned(), format!("{s}/"), format!("{s}0"))
    }
}

/// A path as stored (decoded, so not to be parsed as a request path again).
fn from_stored(s: &str) -> Option<DavPath> {
    s.split('/')
        .filter(|seg| !seg.is_empty())
        .try_fold(DavPath::root(), |p, seg| p.join(seg).ok())
}

fn parent_of(p: &DavPath) -> String {
    p.parent()
        .map(|q| q.as_str().to_owned())
        .unwrap_or_default()
}

impl SqliteChangeLog {
    /// Opens (creating if needed) the log in `file`; at most `max_tombstones` removals are
    /// remembered.
    pub fn open(file: &Path, max_tombstones: u64) -> Result<SqliteChangeLog, StoreError> {
        let conn = connect(file).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS members (
                 path TEXT PRIMARY KEY,
                 parent TEXT NOT NULL,
                 dir INTEGER NOT NULL,
                 fingerprint TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 deleted INTEGER NOT NULL,
                 seen INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS members_seq ON members(seq);
             CREATE INDEX IF NOT EXISTS members_parent ON members(parent, seq);
             CREATE INDEX IF NOT EXISTS members_tombstones ON members(seq) WHERE deleted = 1;
             CREATE TABLE IF NOT EXISTS sync_state (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 store TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 generation INTEGER NOT NULL,
                 floor INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        let existing: Option<(String, i64)> = conn
            .query_row("SELECT store, generation FROM sync_state", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(err)?;
        let (store, generation) = match existing {
            Some(s) => s,
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                conn.execute(
                    "INSERT INTO sync_state (id, store, seq, generation, floor)
                     VALUES (1, ?1, 0, 0, 0)",
                    params![id],
                )
                .map_err(err)?;
                (id, 0)
            }
        };
        Ok(SqliteChangeLog {
            conn: Arc::new(Mutex::new(conn)),
            store_id: store.into(),
            walks: Arc::default(),
            active: Arc::new(AtomicBool::new(generation > 0)),
            max_tombstones: max_tombstones.max(1),
            queue: Arc::default(),
            flushing: Arc::default(),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let queue = self.queue.clone();
        let max = self.max_tombstones;
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Failed("change log lock poisoned".into()))?;
            apply_queued(&mut guard, &queue, max);
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("change log task failed: {e}")))?
    }
}

fn counters(tx: &Transaction<'_>) -> Result<Counters, StoreError> {
    tx.query_row("SELECT seq, generation FROM sync_state", [], |r| {
        Ok(Counters {
            seq: to_u64(r.get(0)?),
            generation: to_u64(r.get(1)?),
        })
    })
    .map_err(err)
}

fn save_seq(tx: &Transaction<'_>, seq: u64) -> Result<(), StoreError> {
    tx.execute("UPDATE sync_state SET seq = ?1", params![to_i64(seq)])
        .map_err(err)?;
    Ok(())
}

/// Brings one member's row to `o`, as seen by generation `seen`; a difference takes the next
/// sequence number.
fn upsert(
    tx: &Transaction<'_>,
    c: &mut Counters,
    o: &Observed,
    seen: u64,
) -> Result<(), StoreError> {
    let dir = o.kind == Kind::Dir;
    let row: Option<(bool, String, bool)> = tx
        .query_row(
            "SELECT dir, fingerprint, deleted FROM members WHERE path = ?1",
            params![o.path.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(err)?;
    let unchanged = matches!(&row, Some((d, f, false)) if *d == dir && *f == o.fingerprint);
    if unchanged {
        tx.execute(
            "UPDATE members SET seen = ?2 WHERE path = ?1",
            params![o.path.as_str(), to_i64(seen)],
        )
        .map_err(err)?;
        return Ok(());
    }
    c.seq += 1;
    tx.execute(
        "INSERT INTO members (path, parent, dir, fingerprint, seq, deleted, seen)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
         ON CONFLICT (path) DO UPDATE SET dir = ?3, fingerprint = ?4, seq = ?5, deleted = 0,
             seen = ?6",
        params![
            o.path.as_str(),
            parent_of(&o.path),
            dir,
            o.fingerprint,
            to_i64(c.seq),
            to_i64(seen)
        ],
    )
    .map_err(err)?;
    Ok(())
}

/// Turns the listed live members into tombstones, deepest first, so that a removed
/// collection's removal comes after its members' (see [`ChangeLog::changes`]).
fn bury(tx: &Transaction<'_>, c: &mut Counters, mut paths: Vec<String>) -> Result<(), StoreError> {
    paths.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    let mut stmt = tx
        .prepare_cached("UPDATE members SET deleted = 1, seq = ?2 WHERE path = ?1")
        .map_err(err)?;
    for p in paths {
        c.seq += 1;
        stmt.execute(params![p, to_i64(c.seq)]).map_err(err)?;
    }
    Ok(())
}

fn live_paths(
    tx: &Transaction<'_>,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx.prepare_cached(sql).map_err(err)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

/// Forgets the oldest tombstones beyond `max`, raising the floor to the newest one forgotten.
fn prune(tx: &Transaction<'_>, max: u64) -> Result<(), StoreError> {
    let count: i64 = tx
        .query_row("SELECT count(*) FROM members WHERE deleted = 1", [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    let excess = to_u64(count).saturating_sub(max);
    if excess == 0 {
        return Ok(());
    }
    let cut: i64 = tx
        .query_row(
            "SELECT max(seq) FROM (SELECT seq FROM members WHERE deleted = 1
             ORDER BY seq LIMIT ?1)",
            params![to_i64(excess)],
            |r| r.get(0),
        )
        .map_err(err)?;
    tx.execute(
        "DELETE FROM members WHERE deleted = 1 AND seq <= ?1",
        params![cut],
    )
    .map_err(err)?;
    tx.execute("UPDATE sync_state SET floor = max(floor, ?1)", params![cut])
        .map_err(err)?;
    Ok(())
}

/// Applies the queued writes, in order, in one transaction (a failure is logged: the next
/// walk finds what they said, except a resource created and removed in between).
fn apply_queued(c: &mut Connection, queue: &Mutex<Vec<Noted>>, max: u64) {
    let notes = match queue.lock() {
        Ok(mut q) => std::mem::take(&mut *q),
        Err(_) => return,
    };
    if notes.is_empty() {
        return;
    }
    if let Err(e) = apply_notes(c, &notes, max) {
        tracing::warn!(error = %e, "cannot record changes for sync");
    }
}

fn apply_notes(c: &mut Connection, notes: &[Noted], max: u64) -> Result<(), StoreError> {
    let tx = c.transaction().map_err(err)?;
    let mut counters = counters(&tx)?;
    // Marked as seen by a walk running now, so it does not take them for removed.
    let seen = counters.generation;
    for note in notes {
        match note {
            Noted::Present(o) => upsert(&tx, &mut counters, o, seen)?,
            Noted::Gone(p) => {
                let (root, lo, hi) = below(p);
                let gone = live_paths(
                    &tx,
                    "SELECT path FROM members WHERE (path = ?1
                     OR (path >= ?2 AND path < ?3)) AND deleted = 0",
                    params![root, lo, hi],
                )?;
                bury(&tx, &mut counters, gone)?;
            }
            Noted::Touched(p) => {
                // Only a member some sync knows of needs a new number.
                let bumped = tx
                    .execute(
                        "UPDATE members SET seq = ?2 WHERE path = ?1 AND deleted = 0",
                        params![p.as_str(), to_i64(counters.seq + 1)],
                    )
                    .map_err(err)?;
                if bumped > 0 {
                    counters.seq += 1;
                }
            }
        }
    }
    save_seq(&tx, counters.seq)?;
    prune(&tx, max)?;
    tx.commit().map_err(err)
}

impl ChangeLog for SqliteChangeLog {
    fn store_id(&self) -> &str {
        &self.store_id
    }

    fn current(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.with(|c| {
            c.query_row("SELECT seq FROM sync_state", [], |r| r.get(0))
                .map(to_u64)
                .map_err(err)
        })
        .boxed()
    }

    fn oldest(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.with(|c| {
            c.query_row("SELECT floor FROM sync_state", [], |r| r.get(0))
                .map(to_u64)
                .map_err(err)
        })
        .boxed()
    }

    fn begin_walk(&self, scope: Scope) -> BoxFuture<'_, Result<Walk, StoreError>> {
        async move {
            let hold = self.walks.clone().lock_owned().await;
            let generation = self
                .with(|c| {
                    let tx = c.transaction().map_err(err)?;
                    let g = counters(&tx)?.generation + 1;
                    tx.execute("UPDATE sync_state SET generation = ?1", params![to_i64(g)])
                        .map_err(err)?;
                    tx.commit().map_err(err)?;
                    Ok(g)
                })
                .await?;
            self.active.store(true, Ordering::Release);
            Ok(Walk {
                scope,
                generation,
                hold: Box::new(hold),
            })
        }
        .boxed()
    }

    fn observe<'a>(
        &'a self,
        walk: &'a Walk,
        batch: Vec<Observed>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let seen = walk.generation;
        self.with(move |c| {
            let tx = c.transaction().map_err(err)?;
            let mut counters = counters(&tx)?;
            for o in &batch {
                upsert(&tx, &mut counters, o, seen)?;
            }
            save_seq(&tx, counters.seq)?;
            tx.commit().map_err(err)
        })
        .boxed()
    }

    fn end_walk(&self, walk: Walk) -> BoxFuture<'_, Result<(), StoreError>> {
        let max = self.max_tombstones;
        async move {
            let Walk {
                scope, generation, ..
            } = &walk;
            let (scope, generation) = (scope.clone(), to_i64(*generation));
            self.with(move |c| {
                let tx = c.transaction().map_err(err)?;
                let mut counters = counters(&tx)?;
                let (root, lo, hi) = below(&scope.root);
                let unseen = match scope.level {
                    SyncLevel::One => live_paths(
                        &tx,
                        "SELECT path FROM members WHERE parent = ?1 AND deleted = 0
                         AND seen < ?2",
                        params![root, generation],
                    )?,
                    SyncLevel::Infinite => live_paths(
                        &tx,
                        "SELECT path FROM members WHERE path >= ?1 AND path < ?2
                         AND path <> ?3 AND deleted = 0 AND seen < ?4",
                        params![lo, hi, root, generation],
                    )?,
                };
                bury(&tx, &mut counters, unseen)?;
                save_seq(&tx, counters.seq)?;
                prune(&tx, max)?;
                tx.commit().map_err(err)
            })
            .await?;
            drop(walk);
            Ok(())
        }
        .boxed()
    }

    fn record(&self, notes: Vec<Noted>) -> BoxFuture<'_, Result<(), StoreError>> {
        if !self.active.load(Ordering::Acquire) || notes.is_empty() {
            return futures_util::future::ready(Ok(())).boxed();
        }
        match self.queue.lock() {
            Ok(mut q) => q.extend(notes),
            Err(_) => {
                return futures_util::future::ready(Err(StoreError::Failed(
                    "change log queue poisoned".into(),
                )))
                .boxed()
            }
        }
        if !self.flushing.swap(true, Ordering::AcqRel) {
            let (conn, queue, flushing) =
                (self.conn.clone(), self.queue.clone(), self.flushing.clone());
            let max = self.max_tombstones;
            tokio::task::spawn_blocking(move || loop {
                if let Ok(mut c) = conn.lock() {
                    apply_queued(&mut c, &queue, max);
                }
                flushing.store(false, Ordering::Release);
                // Notes that came after the drain, with no task to apply them: go on.
                let more = queue.lock().map(|q| !q.is_empty()).unwrap_or(false);
                if !more || flushing.swap(true, Ordering::AcqRel) {
                    break;
                }
            });
        }
        futures_util::future::ready(Ok(())).boxed()
    }

    fn changes<'a>(
        &'a self,
        scope: &'a Scope,
        since: Option<u64>,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<LoggedChange>, StoreError>> {
        let scope = scope.clone();
        self.with(move |c| {
            let (root, lo, hi) = below(&scope.root);
            let in_scope = match scope.level {
                SyncLevel::One => "m.parent = ?1",
                SyncLevel::Infinite => "m.path >= ?2 AND m.path < ?3 AND m.path <> ?1",
            };
            let which = match since {
                None => "m.deleted = 0",
                // A removal below a collection removed after `since` as well is implied by
                // the collection's own (RFC 6578 §3.5.2).
                Some(_) => {
                    "NOT (m.deleted = 1 AND EXISTS (SELECT 1 FROM members p
                     WHERE p.path = m.parent AND p.deleted = 1 AND p.seq > ?5))"
                }
            };
            let sql = format!(
                "SELECT m.path, m.dir, m.deleted, m.seq FROM members m
                 WHERE {in_scope} AND {which} AND m.seq > ?4
                 ORDER BY m.seq LIMIT ?6"
            );
            let floor = since.unwrap_or(0).max(after);
            let mut stmt = c.prepare_cached(&sql).map_err(err)?;
            let rows = stmt
                .query_map(
                    params![
                        root,
                        lo,
                        hi,
                        to_i64(floor),
                        to_i64(since.unwrap_or(0)),
                        i64::try_from(max).unwrap_or(i64::MAX)
                    ],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, bool>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .map_err(err)?;
            let mut out = Vec::new();
            for row in rows {
                let (path, dir, deleted, seq) = row.map_err(err)?;
                let Some(path) = from_stored(&path) else {
                    continue;
                };
                let kind = if dir { Kind::Dir } else { Kind::File };
                out.push(LoggedChange {
                    path,
                    seq: to_u64(seq),
                    state: if deleted {
                        MemberState::Removed(kind)
                    } else {
                        MemberState::Mapped(kind)
                    },
                });
            }
            Ok(out)
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        from_stored(s).unwrap()
    }

    fn file(s: &str, etag: &str) -> Observed {
        Observed {
            path: p(s),
            kind: Kind::File,
            fingerprint: etag.into(),
        }
    }

    fn scope(root: &str, level: SyncLevel) -> Scope {
        Scope {
            root: p(root),
            level,
        }
    }

    async fn walk(log: &SqliteChangeLog, s: &Scope, found: Vec<Observed>) {
        let w = log.begin_walk(s.clone()).await.unwrap();
        log.observe(&w, found).await.unwrap();
        log.end_walk(w).await.unwrap();
    }

    fn names(changes: &[LoggedChange]) -> Vec<(String, bool)> {
        changes
            .iter()
            .map(|c| {
                (
                    c.path.as_str().to_owned(),
                    matches!(c.state, MemberState::Removed(_)),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn walks_find_additions_changes_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteChangeLog::open(&dir.path().join("c.db"), 100).unwrap();
        let s = scope("/c", SyncLevel::Infinite);
        walk(
            &log,
            &s,
            vec![file("/c/a", "1"), file("/c/b", "1"), file("/c/%x y", "1")],
        )
        .await;
        let initial = log.changes(&s, None, 0, 100).await.unwrap();
        assert_eq!(initial.len(), 3);
        assert_eq!(initial[2].path.as_str(), "/c/%x y");
        let token = log.current().await.unwrap();
        walk(&log, &s, vec![file("/c/a", "2"), file("/c/%x y", "1")]).await;
        let since = log.changes(&s, Some(token), 0, 100).await.unwrap();
        assert_eq!(
            names(&since),
            vec![("/c/a".into(), false), ("/c/b".into(), true)]
        );
        // Nothing new: nothing listed.
        let token = log.current().await.unwrap();
        walk(&log, &s, vec![file("/c/a", "2"), file("/c/%x y", "1")]).await;
        assert!(log
            .changes(&s, Some(token), 0, 100)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(log.current().await.unwrap(), token);
    }

    #[tokio::test]
    async fn members_of_a_removed_collection_are_not_listed_and_pruning_raises_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteChangeLog::open(&dir.path().join("c.db"), 3).unwrap();
        let s = scope("/", SyncLevel::Infinite);
        let d = Observed {
            path: p("/d"),
            kind: Kind::Dir,
            fingerprint: String::new(),
        };
        walk(&log, &s, vec![d, file("/d/x", "1"), file("/d/y", "1")]).await;
        let token = log.current().await.unwrap();
        walk(&log, &s, vec![]).await;
        let since = log.changes(&s, Some(token), 0, 100).await.unwrap();
        assert_eq!(names(&since), vec![("/d".into(), true)]);
        assert_eq!(log.oldest().await.unwrap(), 0);
        walk(&log, &s, vec![file("/e", "1")]).await;
        log.record(vec![Noted::Gone(p("/e"))]).await.unwrap();
        // Four tombstones, three kept: the first is forgotten.
        assert!(log.oldest().await.unwrap() > token);
    }

    #[tokio::test]
    async fn recorded_writes_count_and_a_new_store_has_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let file_ = dir.path().join("c.db");
        let log = SqliteChangeLog::open(&file_, 100).unwrap();
        // Before any sync, records are skipped.
        log.record(vec![Noted::Present(file("/t", "1"))])
            .await
            .unwrap();
        assert_eq!(log.current().await.unwrap(), 0);
        let s = scope("/", SyncLevel::One);
        walk(&log, &s, vec![]).await;
        let token = log.current().await.unwrap();
        log.record(vec![Noted::Present(file("/t", "1"))])
            .await
            .unwrap();
        log.record(vec![Noted::Gone(p("/t"))]).await.unwrap();
        let since = log.changes(&s, Some(token), 0, 100).await.unwrap();
        assert_eq!(names(&since), vec![("/t".into(), true)]);
        let id = log.store_id().to_owned();
        drop(log);
        assert_eq!(SqliteChangeLog::open(&file_, 100).unwrap().store_id(), id);
        let other = SqliteChangeLog::open(&dir.path().join("d.db"), 100).unwrap();
        assert_ne!(other.store_id(), id);
    }
}
