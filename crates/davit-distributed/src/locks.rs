//! Locks in PostgreSQL. Every instance sees the same locks; a grant is one transaction under
//! an advisory lock, so of several instances racing for one exclusive lock exactly one wins;
//! expiry is decided by PostgreSQL's clock, so all instances agree on it and a lock lapses on
//! time whoever granted it.

use crate::namespace::below;
use crate::pg::{Pg, PgError};
use davit_proto::href::DavPath;
use davit_proto::xml::LockScope;
use davit_server::locks::{conflicts, Acquire, Lock, LockDepth, LockStore};
use davit_server::props::StoreError;
use std::time::{Duration, SystemTime};
use tokio_postgres::Row;

/// Serialises lock grants across instances (an advisory lock key: "dlock" in ASCII).
const GRANT_LOCK: i64 = 0x64_6c6f_636b;

const COLUMNS: &str = "token, root, exclusive, infinite, owner, timeout_secs, expires, principal";
const LIVE: &str = "(expires IS NULL OR expires > clock_timestamp())";

/// The lock store of the distributed backend.
#[derive(Debug, Clone)]
pub struct PgLockStore {
    pg: Pg,
}

impl PgLockStore {
    /// Locks in the database behind `pg` (its schema is created by [`Pg::connect`]).
    pub fn new(pg: Pg) -> Self {
        PgLockStore { pg }
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
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM davit_locks WHERE {LIVE} \
                     AND (root = $1 OR (infinite AND root = ANY($2)))"
                ),
                &[&path.as_str(), &ancestors(path)],
            )
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

    async fn under(&self, path: &DavPath) -> Result<Vec<Lock>, StoreError> {
        let client = self.pg.client().await?;
        Self::under_in(&client, path).await
    }

    async fn acquire(&self, lock: Lock) -> Result<Acquire, StoreError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await.map_err(PgError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&GRANT_LOCK])
            .await
            .map_err(PgError::from)?;
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
        // Lapsed locks are dropped by whoever grants next, rather than left to pile up.
        tx.execute(
            "DELETE FROM davit_locks WHERE expires <= clock_timestamp()",
            &[],
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
