//! Locks in PostgreSQL. Every instance sees the same locks; a grant is one transaction under
//! an advisory lock, so of several instances racing for one exclusive lock exactly one wins;
//! expiry is decided by PostgreSQL's clock, so all instances agree on it and a lock lapses on
//! time whoever granted it.
//!
//! No lock may be granted between a write's lock check and its change, on any instance. A
//! write therefore announces itself (a `davit_writes` row) before its check, under the
//! grants' advisory lock taken shared, and a grant, under the same lock taken exclusive,
//! answers `Busy` while an announced write overlaps it. Either the announcement commits first
//! and the grant sees it, or the grant commits first and the write's check, which runs after
//! the announcement, sees the lock. An announcement lives until its request ends; the
//! instance renews it every few seconds, so one left by a vanished instance lapses within
//! [`ANNOUNCED_FOR`].
//!
//! A LOCK that meets announced writes waits, and would starve under a stream of overlapping
//! writes from other instances, each announced before the last ends. So while it waits it
//! keeps a `davit_waiting_locks` row (for at most the gate's precedence time), and a write it
//! would protect is not announced meanwhile: the write asks again a little later, as the write
//! gate makes this instance's own writes wait.

use crate::namespace::below;
use crate::pg::{Pg, PgError};
use davit_proto::href::DavPath;
use davit_proto::xml::LockScope;
use davit_server::locks::{conflicts, Acquire, Lock, LockDepth, LockStore};
use davit_server::locks::{Announced, Announcement, Precedence};
use davit_server::props::StoreError;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio_postgres::Row;
use uuid::Uuid;

/// Serialises lock grants across instances (an advisory lock key: "dlock" in ASCII).
const GRANT_LOCK: i64 = 0x64_6c6f_636b;

const COLUMNS: &str = "token, root, exclusive, infinite, owner, timeout_secs, expires, principal";
const LIVE: &str = "(expires IS NULL OR expires > clock_timestamp())";

/// How long an announced write stays in force without being renewed.
const ANNOUNCED_FOR: Duration = Duration::from_secs(30);
/// How often an instance renews its announcements.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// The lock store of the distributed backend.
#[derive(Debug, Clone)]
pub struct PgLockStore {
    pg: Pg,
    /// This instance's announcements in force, renewed by a background task.
    announced: Arc<Mutex<HashSet<Uuid>>>,
    renewing: Arc<std::sync::Once>,
}

impl PgLockStore {
    /// Locks in the database behind `pg` (its schema is created by [`Pg::connect`]).
    pub fn new(pg: Pg) -> Self {
        PgLockStore {
            pg,
            announced: Arc::default(),
            renewing: Arc::new(std::sync::Once::new()),
        }
    }

    /// Starts the task renewing this instance's announcements; it ends with the store.
    fn renew_in_background(&self) {
        self.renewing.call_once(|| {
            let pg = self.pg.clone();
            let announced: Weak<Mutex<HashSet<Uuid>>> = Arc::downgrade(&self.announced);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let Some(set) = announced.upgrade() else {
                        return;
                    };
                    let ids: Vec<Uuid> = match set.lock() {
                        Ok(set) => set.iter().copied().collect(),
                        Err(_) => return,
                    };
                    drop(set);
                    if ids.is_empty() {
                        continue;
                    }
                    let renewed = async {
                        let client = pg.client().await?;
                        client
                            .execute(
                                "UPDATE davit_writes SET expires = clock_timestamp() \
                                 + make_interval(secs => $2) WHERE id = ANY($1)",
                                &[&ids, &(ANNOUNCED_FOR.as_secs_f64())],
                            )
                            .await
                            .map_err(PgError::from)?;
                        Ok::<_, StoreError>(())
                    };
                    if let Err(e) = renewed.await {
                        tracing::warn!(error = %e, "renewing announced writes");
                    }
                }
            });
        });
    }
}

fn lock_of(row: &Row) -> Result<Lock, StoreError> {
    let root: String = row.get(1);
    let root = DavPath::parse(&root)
        .map_err(|_| StoreError::Failed(format!("a stored lock root is not a path: {root:?}")))?;
    let timeout: Option<i64> = row.get(5);
    Ok(Lock {
        token: row.get(0),
        root,
        scope: if row.get(2) {
            LockScope::Exclusive
        } else {
            LockScope::Shared
        },
        depth: if row.get(3) {
            LockDepth::Infinity
        } else {
            LockDepth::Zero
        },
        owner: row.get(4),
        timeout: timeout.map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
        expires: row.get::<_, Option<SystemTime>>(6),
        principal: row.get(7),
    })
}

fn locks_of(rows: &[Row]) -> Result<Vec<Lock>, StoreError> {
    rows.iter().map(lock_of).collect()
}

/// The proper ancestors of `path`, nearest first.
fn ancestors(path: &DavPath) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = path.parent();
    while let Some(a) = p {
        out.push(a.as_str().to_owned());
        p = a.parent();
    }
    out
}

fn secs(timeout: Option<Duration>) -> Option<i64> {
    timeout.map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

/// The expiry a timeout gives, on PostgreSQL's clock.
const EXPIRES: &str =
    "CASE WHEN $1::bigint IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $1::bigint) END";

impl PgLockStore {
    async fn covering_in(
        client: &impl deadpool_postgres::GenericClient,
        path: &DavPath,
    ) -> Result<Vec<Lock>, StoreError> {
        let stmt = Box::pin(client.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM davit_locks WHERE {LIVE} \
                 AND (root = $1 OR (infinite AND root = ANY($2)))"
        )))
        .await
        .map_err(PgError::from)?;
        let rows = client
            .query(&stmt, &[&path.as_str(), &ancestors(path)])
            .await
            .map_err(PgError::from)?;
        locks_of(&rows)
    }

    async fn under_in(
        client: &impl deadpool_postgres::GenericClient,
        path: &DavPath,
    ) -> Result<Vec<Lock>, StoreError> {
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM davit_locks WHERE {LIVE} \
                     AND (root = $1 OR root LIKE $2)"
                ),
                &[&path.as_str(), &below(path)],
            )
            .await
            .map_err(PgError::from)?;
        locks_of(&rows)
    }
}

impl LockStore for PgLockStore {
    async fn covering(&self, path: &DavPath) -> Result<Vec<Lock>, StoreError> {
        let client = self.pg.client().await?;
        Self::covering_in(&client, path).await
    }

    async fn covering_many(&self, paths: &[&DavPath]) -> Result<Vec<Vec<Lock>>, StoreError> {
        // One query for the batch: every lock rooted at one of the paths or at an ancestor
        // (members of one listing share theirs), then sorted out here.
        let mut roots: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for p in paths {
            for r in std::iter::once(p.as_str().to_owned()).chain(ancestors(p)) {
                if seen.insert(r.clone()) {
                    roots.push(r);
                }
            }
        }
        let client = self.pg.client().await?;
        let stmt = Box::pin(client.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM davit_locks WHERE {LIVE} AND root = ANY($1)"
        )))
        .await
        .map_err(PgError::from)?;
        let rows = client
            .query(&stmt, &[&roots])
            .await
            .map_err(PgError::from)?;
        let locks = locks_of(&rows)?;
        Ok(paths
            .iter()
            .map(|p| locks.iter().filter(|l| l.covers(p)).cloned().collect())
            .collect())
    }

    async fn under(&self, path: &DavPath) -> Result<Vec<Lock>, StoreError> {
        let client = self.pg.client().await?;
        Self::under_in(&client, path).await
    }

    async fn acquire(&self, lock: Lock) -> Result<Acquire, StoreError> {
        self.acquire_beside(lock, &[]).await
    }

    async fn acquire_beside(&self, lock: Lock, own: &[Uuid]) -> Result<Acquire, StoreError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await.map_err(PgError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&GRANT_LOCK])
            .await
            .map_err(PgError::from)?;
        // A write announced anywhere that this lock would protect (`gate::overlaps`).
        let busy: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM davit_writes WHERE expires > clock_timestamp() \
                 AND id <> ALL($1) AND (path = $2 OR ($3 AND path LIKE $4) \
                 OR (tree AND path = ANY($5))))",
                &[
                    &own,
                    &lock.root.as_str(),
                    &(lock.depth == LockDepth::Infinity),
                    &below(&lock.root),
                    &ancestors(&lock.root),
                ],
            )
            .await
            .map_err(PgError::from)?
            .get(0);
        if busy {
            tx.rollback().await.map_err(PgError::from)?;
            return Ok(Acquire::Busy);
        }
        let mut in_way: Vec<Lock> = Self::covering_in(&tx, &lock.root)
            .await?
            .into_iter()
            .filter(|l| conflicts(l.scope, lock.scope))
            .collect();
        if lock.depth == LockDepth::Infinity {
            in_way.extend(
                Self::under_in(&tx, &lock.root)
                    .await?
                    .into_iter()
                    .filter(|l| l.root != lock.root && conflicts(l.scope, lock.scope)),
            );
        }
        if !in_way.is_empty() {
            tx.rollback().await.map_err(PgError::from)?;
            return Ok(Acquire::Conflict(in_way));
        }
        // Lapsed locks and announcements are dropped by whoever grants next, rather than left
        // to pile up.
        tx.batch_execute(
            "DELETE FROM davit_locks WHERE expires <= clock_timestamp(); \
             DELETE FROM davit_writes WHERE expires <= clock_timestamp(); \
             DELETE FROM davit_waiting_locks WHERE until <= clock_timestamp();",
        )
        .await
        .map_err(PgError::from)?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO davit_locks ({COLUMNS}) \
                     VALUES ($2, $3, $4, $5, $6, $1, {EXPIRES}, $7) RETURNING {COLUMNS}"
                ),
                &[
                    &secs(lock.timeout),
                    &lock.token,
                    &lock.root.as_str(),
                    &(lock.scope == LockScope::Exclusive),
                    &(lock.depth == LockDepth::Infinity),
                    &lock.owner,
                    &lock.principal,
                ],
            )
            .await
            .map_err(PgError::from)?;
        let granted = lock_of(&row)?;
        tx.commit().await.map_err(PgError::from)?;
        Ok(Acquire::Granted(granted))
    }

    async fn get(&self, token: &str) -> Result<Option<Lock>, StoreError> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM davit_locks WHERE token = $1 AND {LIVE}"),
                &[&token],
            )
            .await
            .map_err(PgError::from)?;
        row.as_ref().map(lock_of).transpose()
    }

    async fn refresh(
        &self,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Lock>, StoreError> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE davit_locks SET timeout_secs = $1, expires = {EXPIRES} \
                     WHERE token = $2 AND {LIVE} RETURNING {COLUMNS}"
                ),
                &[&secs(timeout), &token],
            )
            .await
            .map_err(PgError::from)?;
        row.as_ref().map(lock_of).transpose()
    }

    async fn release(&self, token: &str) -> Result<bool, StoreError> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt(
                &format!("DELETE FROM davit_locks WHERE token = $1 RETURNING {LIVE}"),
                &[&token],
            )
            .await
            .map_err(PgError::from)?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    async fn announce(
        &self,
        writes: &[(&DavPath, bool)],
        precedence: Precedence,
    ) -> Result<Announced, StoreError> {
        self.renew_in_background();
        let id = Uuid::new_v4();
        let paths: Vec<&str> = writes.iter().map(|(p, _)| p.as_str()).collect();
        let trees: Vec<bool> = writes.iter().map(|(_, t)| *t).collect();
        let belows: Vec<String> = writes.iter().map(|(p, _)| below(p)).collect();
        let client = self.pg.client().await?;
        // One statement, so one transaction: the shared advisory lock is held until the rows
        // are committed (see the module's comment). Nothing is inserted while a waiting LOCK
        // would protect one of the writes (`gate::overlaps`), unless precedence is ignored.
        let announce = Box::pin(client.prepare_cached(
            "WITH gate AS (SELECT pg_advisory_xact_lock_shared($1)), \
             w AS (SELECT * FROM unnest($3::text[], $4::boolean[], $6::text[]) \
                   AS w(path, tree, below)), \
             held AS (SELECT 1 FROM w, davit_waiting_locks l \
                      WHERE $7 AND l.until > clock_timestamp() \
                      AND (l.root = w.path OR (l.infinite AND w.path LIKE l.below) \
                           OR (w.tree AND l.root LIKE w.below)) LIMIT 1), \
             ins AS (INSERT INTO davit_writes (id, path, tree, expires) \
                     SELECT $2, w.path, w.tree, clock_timestamp() + make_interval(secs => $5) \
                     FROM gate, w WHERE NOT EXISTS (SELECT 1 FROM held) RETURNING 1) \
             SELECT count(*) FROM ins",
        ))
        .await
        .map_err(PgError::from)?;
        let inserted: i64 = client
            .query_one(
                &announce,
                &[
                    &GRANT_LOCK,
                    &id,
                    &paths,
                    &trees,
                    &(ANNOUNCED_FOR.as_secs_f64()),
                    &belows,
                    &(precedence == Precedence::YieldToWaitingLocks),
                ],
            )
            .await
            .map_err(PgError::from)?
            .try_get(0)
            .map_err(PgError::from)?;
        drop(client);
        if inserted == 0 && !writes.is_empty() {
            return Ok(Announced::HeldBack);
        }
        if let Ok(mut set) = self.announced.lock() {
            set.insert(id);
        }
        let (pg, announced) = (self.pg.clone(), self.announced.clone());
        Ok(Announced::Yes(Announcement::new(id, move || {
            if let Ok(mut set) = announced.lock() {
                set.remove(&id);
            }
            // Withdrawn after the response, off the request's path; if PostgreSQL is away, the
            // row lapses unrenewed.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Ok(client) = pg.client().await {
                        if let Ok(withdraw) = Box::pin(
                            client.prepare_cached("DELETE FROM davit_writes WHERE id = $1"),
                        )
                        .await
                        {
                            let _ = client.execute(&withdraw, &[&id]).await;
                        }
                    }
                });
            }
        })))
    }

    async fn hold_writes(
        &self,
        root: &DavPath,
        infinite: bool,
        for_at_most: Duration,
    ) -> Result<Option<Announcement>, StoreError> {
        let id = Uuid::new_v4();
        let client = self.pg.client().await?;
        client
            .execute(
                "INSERT INTO davit_waiting_locks (id, root, below, infinite, until) \
                 VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))",
                &[
                    &id,
                    &root.as_str(),
                    &below(root),
                    &infinite,
                    &for_at_most.as_secs_f64(),
                ],
            )
            .await
            .map_err(PgError::from)?;
        drop(client);
        let pg = self.pg.clone();
        Ok(Some(Announcement::new(id, move || {
            // Removed once the LOCK is granted or given up; if PostgreSQL is away, the row
            // lapses at `until`.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Ok(client) = pg.client().await {
                        let _ = client
                            .execute("DELETE FROM davit_waiting_locks WHERE id = $1", &[&id])
                            .await;
                    }
                });
            }
        })))
    }

    async fn release_tree(&self, path: &DavPath) -> Result<(), StoreError> {
        let client = self.pg.client().await?;
        client
            .execute(
                "DELETE FROM davit_locks WHERE root = $1 OR root LIKE $2",
                &[&path.as_str(), &below(path)],
            )
            .await
            .map_err(PgError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_and_reach_only_below() {
        let p = |s: &str| DavPath::parse(s).unwrap_or_else(|_| DavPath::root());
        assert_eq!(below(&DavPath::root()), "/%");
        assert_eq!(below(&p("/a")), "/a/%");
        assert_eq!(below(&p("/50%25_off")), "/50\\%\\_off/%");
        assert_eq!(ancestors(&p("/a/b/c")), ["/a/b", "/a", "/"]);
        assert!(ancestors(&DavPath::root()).is_empty());
    }
}
