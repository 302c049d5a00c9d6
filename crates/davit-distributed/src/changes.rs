//! sync-collection's change log in PostgreSQL (RFC 6578): the history the embedded
//! `SqliteChangeLog` keeps (the last known state of every member a sync has covered,
//! tombstones, one sequence, a pruning floor), shared by every instance on the database. A
//! change made through one instance is listed by a REPORT asked of another, and a token issued
//! by one is valid on all: the store id is a row of the database, made once.
//!
//! Every change to the log is a transaction that first locks the one state row, so sequence
//! numbers are handed out in commit order. (A PostgreSQL sequence would not do: a number taken
//! by a transaction that commits late could fall below a token already issued, and a client
//! holding that token would never see its change.)
//!
//! Walks are serialised across instances as the embedded log serialises them within one
//! process: a session advisory lock, taken on a connection of the walk's own, is held from
//! `begin_walk` to `end_walk`. A walk dropped unfinished closes that connection, and
//! PostgreSQL releases the lock with the session; so does an instance that dies mid-walk.

use crate::pg::{Pg, PgError};
use davit_proto::href::DavPath;
use davit_proto::xml::SyncLevel;
use davit_server::changes::{ChangeLog, LoggedChange, MemberState, Noted, Observed, Scope, Walk};
use davit_server::props::StoreError;
use davit_server::storage::Kind;
use deadpool_postgres::{ClientWrapper, Object};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_postgres::types::ToSql;

/// Serialises walks across instances (an advisory lock key: "dsync" in ASCII).
const WALK_LOCK: i64 = 0x64_7379_6e63;

/// The change log of the distributed backend.
#[derive(Clone, Debug)]
pub struct PgChangeLog {
    pg: Pg,
    store_id: Arc<str>,
    /// This process's walks wait here first, so that at most one of them holds a connection
    /// while waiting for the cluster-wide lock.
    walks: Arc<tokio::sync::Mutex<()>>,
    /// True once some instance has walked: until then nobody has synced, and writes need no
    /// record (the first walk finds everything anyway).
    active: Arc<AtomicBool>,
    max_tombstones: u64,
}

/// A walk's turn: this process's place, and the connection holding the advisory lock.
struct Turn {
    conn: Option<Object>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Turn {
    fn client(&self) -> Result<&ClientWrapper, StoreError> {
        self.conn
            .as_deref()
            .ok_or_else(|| StoreError::Failed("the walk has ended".into()))
    }

    /// Releases the advisory lock and gives the connection back to the pool.
    async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            match conn
                .execute("SELECT pg_advisory_unlock($1)", &[&WALK_LOCK])
                .await
            {
                Ok(_) => drop(conn),
                // Closing the session releases the lock too.
                Err(_) => drop(Object::take(conn)),
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Unfinished (or cancelled while waiting for the lock): the connection leaves the
        // pool and closes, so the lock can never be left behind on a pooled session.
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// The state row's counters, read under its lock and written back before the commit.
struct Counters {
    seq: u64,
    generation: u64,
    tombstones: u64,
}

impl Counters {
    /// Locks the state row: every other change to the log waits until this transaction ends.
    async fn lock(c: &ClientWrapper) -> Result<Counters, StoreError> {
        let stmt = c
            .prepare_cached(
                "SELECT seq, generation, tombstones FROM davit_sync_state WHERE id = 1 \
                 FOR UPDATE",
            )
            .await
            .map_err(q)?;
        let row = c.query_one(&stmt, &[]).await.map_err(q)?;
        Ok(Counters {
            seq: to_u64(row.get(0)),
            generation: to_u64(row.get(1)),
            tombstones: to_u64(row.get(2)),
        })
    }

    async fn save(&self, c: &ClientWrapper) -> Result<(), StoreError> {
        let stmt = c
            .prepare_cached("UPDATE davit_sync_state SET seq = $1, tombstones = $2 WHERE id = 1")
            .await
            .map_err(q)?;
        c.execute(&stmt, &[&to_i64(self.seq), &to_i64(self.tombstones)])
            .await
            .map_err(q)?;
        Ok(())
    }
}

fn q(e: tokio_postgres::Error) -> StoreError {
    PgError::Query(e).into()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `(path, lower, upper)`: every strict descendant of `p` sorts in `lower..upper` (byte order).
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

/// Brings the members' rows to `found`, as seen by generation `seen`; each that differs takes
/// the next sequence number, in the order given. `seen` only grows, so a late observation can
/// never make a member look unseen to a newer walk.
async fn upsert(
    c: &ClientWrapper,
    n: &mut Counters,
    found: &[Observed],
    seen: u64,
) -> Result<(), StoreError> {
    if found.is_empty() {
        return Ok(());
    }
    let paths: Vec<&str> = found.iter().map(|o| o.path.as_str()).collect();
    let parents: Vec<String> = found.iter().map(|o| parent_of(&o.path)).collect();
    let dirs: Vec<bool> = found.iter().map(|o| o.kind == Kind::Dir).collect();
    let prints: Vec<&str> = found.iter().map(|o| o.fingerprint.as_str()).collect();
    let stmt = c
        .prepare_cached(
            "WITH found AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[])
                     WITH ORDINALITY AS f(path, parent, dir, fingerprint, ord)
             ), changed AS (
                 SELECT f.*, $5::bigint + row_number() OVER (ORDER BY f.ord) AS seq
                 FROM found f
                 WHERE NOT EXISTS (SELECT 1 FROM davit_sync_members m
                     WHERE m.path = f.path AND NOT m.deleted AND m.dir = f.dir
                     AND m.fingerprint = f.fingerprint)
             ), written AS (
                 INSERT INTO davit_sync_members AS m
                     (path, parent, dir, fingerprint, seq, deleted, seen)
                 SELECT path, parent, dir, fingerprint, seq, false, $6 FROM changed
                 ON CONFLICT (path) DO UPDATE SET dir = excluded.dir,
                     fingerprint = excluded.fingerprint, seq = excluded.seq, deleted = false,
                     seen = GREATEST(m.seen, excluded.seen)
                 RETURNING 1
             ), kept AS (
                 UPDATE davit_sync_members m SET seen = GREATEST(m.seen, $6) FROM found f
                 WHERE m.path = f.path
                 AND NOT EXISTS (SELECT 1 FROM changed x WHERE x.path = f.path)
             )
             SELECT count(*) FROM written",
        )
        .await
        .map_err(q)?;
    let row = c
        .query_one(
            &stmt,
            &[
                &paths,
                &parents,
                &dirs,
                &prints,
                &to_i64(n.seq),
                &to_i64(seen),
            ],
        )
        .await
        .map_err(q)?;
    n.seq += to_u64(row.get(0));
    Ok(())
}

/// Turns the live members that `filter` selects into tombstones, deepest first, so that a
/// removed collection's removal comes after its members' (see [`ChangeLog::changes`]).
/// `filter`'s parameters start at `$2`.
async fn bury(
    c: &ClientWrapper,
    n: &mut Counters,
    filter: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<(), StoreError> {
    let sql = format!(
        "WITH gone AS (
             SELECT path, $1::bigint
                 + row_number() OVER (ORDER BY octet_length(path) DESC, path) AS seq
             FROM davit_sync_members WHERE NOT deleted AND {filter}
         )
         UPDATE davit_sync_members m SET deleted = true, seq = gone.seq FROM gone
         WHERE m.path = gone.path"
    );
    let stmt = c.prepare_cached(&sql).await.map_err(q)?;
    let base = to_i64(n.seq);
    let mut all: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(args.len() + 1);
    all.push(&base);
    all.extend_from_slice(args);
    let buried = c.execute(&stmt, &all).await.map_err(q)?;
    n.seq += buried;
    n.tombstones += buried;
    Ok(())
}

/// Forgets the oldest tombstones beyond `max`, raising the floor to the newest one forgotten.
/// They are counted only when the running estimate (never too low) exceeds `max`.
async fn prune(c: &ClientWrapper, n: &mut Counters, max: u64) -> Result<(), StoreError> {
    if n.tombstones <= max {
        return Ok(());
    }
    let exact: i64 = c
        .query_one("SELECT count(*) FROM davit_sync_members WHERE deleted", &[])
        .await
        .map_err(q)?
        .get(0);
    let exact = to_u64(exact);
    let excess = exact.saturating_sub(max);
    n.tombstones = exact;
    if excess == 0 {
        return Ok(());
    }
    let cut: i64 = c
        .query_one(
            "SELECT max(seq) FROM (SELECT seq FROM davit_sync_members WHERE deleted
             ORDER BY seq LIMIT $1) t",
            &[&to_i64(excess)],
        )
        .await
        .map_err(q)?
        .get(0);
    let removed = c
        .execute(
            "DELETE FROM davit_sync_members WHERE deleted AND seq <= $1",
            &[&cut],
        )
        .await
        .map_err(q)?;
    c.execute(
        "UPDATE davit_sync_state SET floor = GREATEST(floor, $1) WHERE id = 1",
        &[&cut],
    )
    .await
    .map_err(q)?;
    n.tombstones = exact.saturating_sub(removed);
    Ok(())
}

/// Runs `f` between BEGIN and COMMIT on `c` (ROLLBACK when it fails).
async fn in_transaction<T>(
    c: &ClientWrapper,
    f: impl AsyncFnOnce(&ClientWrapper) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.batch_execute("BEGIN").await.map_err(q)?;
    match f(c).await {
        Ok(v) => {
            c.batch_execute("COMMIT").await.map_err(q)?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

impl PgChangeLog {
    /// The change log in the database behind `pg` (its schema, and the store id, are made by
    /// [`Pg::connect`]); at most `max_tombstones` removals are remembered.
    pub async fn open(pg: Pg, max_tombstones: u64) -> Result<PgChangeLog, StoreError> {
        let conn = pg.conn().await?;
        let row = conn
            .client()?
            .query_one("SELECT store, generation FROM davit_sync_state", &[])
            .await
            .map_err(q)?;
        let store: String = row.get(0);
        let generation: i64 = row.get(1);
        drop(conn);
        Ok(PgChangeLog {
            pg,
            store_id: store.into(),
            walks: Arc::default(),
            active: Arc::new(AtomicBool::new(generation > 0)),
            max_tombstones: max_tombstones.max(1),
        })
    }

    async fn read_state(&self, column: &'static str) -> Result<u64, StoreError> {
        let conn = self.pg.conn().await?;
        let c = conn.client()?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {column} FROM davit_sync_state WHERE id = 1"
            ))
            .await
            .map_err(q)?;
        let row = c.query_one(&stmt, &[]).await.map_err(q)?;
        Ok(to_u64(row.get(0)))
    }

    /// True once some instance has walked (then every write must be recorded).
    async fn is_active(&self) -> Result<bool, StoreError> {
        if self.active.load(Ordering::Acquire) {
            return Ok(true);
        }
        // Read after the write it is asked for: a walk that began later lists that write's
        // result itself.
        let active = self.read_state("generation").await? > 0;
        if active {
            self.active.store(true, Ordering::Release);
        }
        Ok(active)
    }
}

impl ChangeLog for PgChangeLog {
    fn store_id(&self) -> &str {
        &self.store_id
    }

    fn current(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read_state("seq").boxed()
    }

    fn oldest(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read_state("floor").boxed()
    }

    fn begin_walk(&self, scope: Scope) -> BoxFuture<'_, Result<Walk, StoreError>> {
        async move {
            let local = self.walks.clone().lock_owned().await;
            let turn = Turn {
                conn: Some(self.pg.client().await?),
                _local: local,
            };
            let c = turn.client()?;
            // Waits for a walk of any instance to end.
            c.execute("SELECT pg_advisory_lock($1)", &[&WALK_LOCK])
                .await
                .map_err(q)?;
            let row = c
                .query_one(
                    "UPDATE davit_sync_state SET generation = generation + 1 WHERE id = 1 \
                     RETURNING generation",
                    &[],
                )
                .await
                .map_err(q)?;
            self.active.store(true, Ordering::Release);
            Ok(Walk {
                scope,
                generation: to_u64(row.get(0)),
                hold: Box::new(turn),
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
        async move {
            if batch.is_empty() {
                return Ok(());
            }
            // On a pooled connection: `seen` only grows, so this needs no walk lock.
            self.pg
                .atomically(async |c| {
                    let mut n = Counters::lock(c).await?;
                    upsert(c, &mut n, &batch, seen).await?;
                    n.save(c).await
                })
                .await
        }
        .boxed()
    }

    fn end_walk(&self, walk: Walk) -> BoxFuture<'_, Result<(), StoreError>> {
        let max = self.max_tombstones;
        async move {
            let Walk {
                scope,
                generation,
                hold,
            } = walk;
            let turn = hold
                .downcast::<Turn>()
                .map_err(|_| StoreError::Failed("a walk of another change log".into()))?;
            let generation = to_i64(generation);
            let (root, lo, hi) = below(&scope.root);
            // On the walk's own connection: if that session is gone, so is the lock, and
            // this fails rather than remove what a newer walk may not have reached yet.
            in_transaction(turn.client()?, async |c| {
                let mut n = Counters::lock(c).await?;
                match scope.level {
                    SyncLevel::One => {
                        bury(
                            c,
                            &mut n,
                            "parent = $2 AND seen < $3",
                            &[&root, &generation],
                        )
                        .await?
                    }
                    SyncLevel::Infinite => {
                        bury(
                            c,
                            &mut n,
                            "path >= $2 AND path < $3 AND path <> $4 AND seen < $5",
                            &[&lo, &hi, &root, &generation],
                        )
                        .await?
                    }
                }
                prune(c, &mut n, max).await?;
                n.save(c).await
            })
            .await?;
            turn.release().await;
            Ok(())
        }
        .boxed()
    }

    fn record(&self, notes: Vec<Noted>) -> BoxFuture<'_, Result<(), StoreError>> {
        let max = self.max_tombstones;
        async move {
            if notes.is_empty() || !self.is_active().await? {
                return Ok(());
            }
            // Committed before the write answers, so a REPORT on any instance that follows
            // it sees it.
            self.pg
                .atomically(async |c| {
                    let mut n = Counters::lock(c).await?;
                    // Marked as seen by a walk running now, so it does not take them for
                    // removed.
                    let seen = n.generation;
                    for note in &notes {
                        match note {
                            Noted::Present(o) => {
                                upsert(c, &mut n, std::slice::from_ref(o), seen).await?
                            }
                            Noted::Gone(p) => {
                                let (root, lo, hi) = below(p);
                                bury(
                                    c,
                                    &mut n,
                                    "(path = $2 OR (path >= $3 AND path < $4))",
                                    &[&root, &lo, &hi],
                                )
                                .await?
                            }
                            Noted::Touched(p) => {
                                // Only a member some sync knows of needs a new number.
                                let stmt = c
                                    .prepare_cached(
                                        "UPDATE davit_sync_members SET seq = $2 \
                                         WHERE path = $1 AND NOT deleted",
                                    )
                                    .await
                                    .map_err(q)?;
                                let bumped = c
                                    .execute(&stmt, &[&p.as_str(), &to_i64(n.seq + 1)])
                                    .await
                                    .map_err(q)?;
                                if bumped > 0 {
                                    n.seq += 1;
                                }
                            }
                        }
                    }
                    prune(c, &mut n, max).await?;
                    n.save(c).await
                })
                .await
        }
        .boxed()
    }

    fn changes<'a>(
        &'a self,
        scope: &'a Scope,
        since: Option<u64>,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<LoggedChange>, StoreError>> {
        async move {
            let (root, lo, hi) = below(&scope.root);
            let floor = to_i64(since.unwrap_or(0).max(after));
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            let since_seq = to_i64(since.unwrap_or(0));
            let mut args: Vec<&(dyn ToSql + Sync)> = vec![&floor, &limit];
            let in_scope = match scope.level {
                SyncLevel::One => {
                    args.push(&root);
                    "m.parent = $3"
                }
                SyncLevel::Infinite => {
                    args.extend([&lo as &(dyn ToSql + Sync), &hi, &root]);
                    "m.path >= $3 AND m.path < $4 AND m.path <> $5"
                }
            };
            let which = match since {
                None => "NOT m.deleted".to_owned(),
                // A removal below a collection removed after `since` as well is implied by
                // the collection's own (RFC 6578 §3.5.2).
                Some(_) => {
                    args.push(&since_seq);
                    format!(
                        "NOT (m.deleted AND EXISTS (SELECT 1 FROM davit_sync_members p
                         WHERE p.path = m.parent AND p.deleted AND p.seq > ${}))",
                        args.len()
                    )
                }
            };
            let sql = format!(
                "SELECT m.path, m.dir, m.deleted, m.seq FROM davit_sync_members m
                 WHERE {in_scope} AND {which} AND m.seq > $1
                 ORDER BY m.seq LIMIT $2"
            );
            let conn = self.pg.conn().await?;
            let c = conn.client()?;
            let stmt = c.prepare_cached(&sql).await.map_err(q)?;
            let rows = c.query(&stmt, &args).await.map_err(q)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let path: &str = row.get(0);
                let Some(path) = from_stored(path) else {
                    continue;
                };
                let kind = if row.get(1) { Kind::Dir } else { Kind::File };
                out.push(LoggedChange {
                    path,
                    seq: to_u64(row.get(3)),
                    state: if row.get(2) {
                        MemberState::Removed(kind)
                    } else {
                        MemberState::Mapped(kind)
                    },
                });
            }
            Ok(out)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_bounds_hold_every_descendant_and_nothing_else() {
        let p = |s: &str| from_stored(s).unwrap_or_else(|| panic!("{s}"));
        let (root, lo, hi) = below(&p("/a b"));
        assert_eq!(root, "/a b");
        for inside in ["/a b/x", "/a b/%2F", "/a b/😀/deep"] {
            assert!(lo.as_str() <= inside && inside < hi.as_str(), "{inside}");
        }
        for outside in ["/a b", "/a bc", "/a b0", "/a", "/a c/x"] {
            assert!(
                !(lo.as_str() <= outside && outside < hi.as_str()),
                "{outside}"
            );
        }
        let (_, lo, hi) = below(&DavPath::root());
        assert!(lo.as_str() <= "/x" && "/x" < hi.as_str());
        assert_eq!(parent_of(&p("/a/b")), "/a");
        assert_eq!(parent_of(&p("/a")), "/");
        assert_eq!(
            from_stored("/a b/%x").map(|d| d.as_str().to_owned()),
            Some("/a b/%x".into())
        );
    }
}
