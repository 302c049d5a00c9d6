//! The PostgreSQL connection pool, its settings (the `[store]` table) and the schema.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgConfig {
    /// A libpq connection URL or key/value string (`postgres://user:pass@host:5432/db`,
    /// `host=/run/postgresql dbname=davit`). Printed with its password hidden.
    #[serde(serialize_with = "redacted_url")]
    pub url: String,
    /// Most connections this instance opens.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Seconds to wait for a connection (opening one, or a free one from the pool) before a
    /// request fails with 503.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// The connection string with any password replaced by `(set)`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:(set)@{host}");
            }
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=(set)".to_owned(),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact(url))
}

fn default_pool_size() -> usize {
    16
}
fn default_timeout() -> u64 {
    5
}

/// PostgreSQL failed or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The settings do not make sense.
    #[error("store.url: {0}")]
    Config(String),
    /// No connection could be had in time.
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
}

impl From<PgError> for davit_server::props::StoreError {
    fn from(e: PgError) -> Self {
        use davit_server::props::StoreError;
        if e.is_unavailable() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Failed(e.to_string())
        }
    }
}

impl PgError {
    /// Whether PostgreSQL is away rather than a statement wrong: no connection in time, the
    /// connection broke mid-statement, or the server ended it because it is shutting down or
    /// starting up (SQLSTATE class 57, operator intervention, as `pg_ctl stop` does to every
    /// session: 57P01) or for a connection exception (class 08). Such a request is worth
    /// retrying later: 503 with `Retry-After`, never 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgError::Unavailable(_) => true,
            PgError::Config(_) => false,
            PgError::Query(q) => {
                q.is_closed()
                    || std::error::Error::source(q).is_some_and(|s| s.is::<std::io::Error>())
                    || q.code()
                        .is_some_and(|c| matches!(c.code().get(..2), Some("57" | "08")))
            }
        }
    }
}

/// A pool of connections to the shared database; or, for an atomic batch, one connection of
/// it inside a transaction ([`Pg::begin`]), which every statement made through this handle
/// joins.
#[derive(Clone)]
pub struct Pg {
    pool: Pool,
    pinned: Option<Arc<tokio::sync::Mutex<Pinned>>>,
}

/// The connection of a transaction in progress. Dropped unfinished (the batch's task died),
/// it leaves the pool and closes, and PostgreSQL rolls the transaction back: a connection in
/// the middle of a transaction never serves another request.
pub(crate) struct Pinned {
    conn: Option<Object>,
}

impl Pinned {
    fn client(&self) -> Result<&deadpool_postgres::ClientWrapper, PgError> {
        self.conn
            .as_deref()
            .ok_or_else(|| PgError::Unavailable("the transaction has ended".into()))
    }

    /// Ends the transaction with `sql` (COMMIT or ROLLBACK) and returns the connection to the
    /// pool.
    async fn finish(&mut self, sql: &str) -> Result<(), PgError> {
        let ended = self.client()?.batch_execute(sql).await;
        if ended.is_ok() {
            drop(self.conn.take());
        }
        Ok(ended?)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// A connection for one statement or a few: from the pool, or the transaction's own.
// Short-lived, on the stack of one call: boxing the larger variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Conn<'a> {
    Pooled(Object),
    Pinned(tokio::sync::MutexGuard<'a, Pinned>),
}

impl Conn<'_> {
    /// The connection; its `prepare_cached` keeps the statements of hot queries prepared
    /// per connection (parsing and planning each again was most of PostgreSQL's work in a
    /// listing).
    pub(crate) fn client(&self) -> Result<&deadpool_postgres::ClientWrapper, PgError> {
        match self {
            Conn::Pooled(o) => Ok(o),
            Conn::Pinned(p) => p.client(),
        }
    }
}

/// A pooled connection inside `BEGIN`: unless [`finish`](Self::finish)ed, it leaves the pool
/// when dropped (a cancelled request), so the open transaction dies with it.
struct Begun(Option<Object>);

impl Begun {
    fn finish(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Begun {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// Serialises schema changes of instances starting together (an advisory lock key: "davit"
/// in ASCII).
const SCHEMA_LOCK: i64 = 0x0064_6176_6974;

/// The schema, created when missing. Every statement is idempotent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS davit_locks (
    token text PRIMARY KEY,
    root text NOT NULL,
    exclusive boolean NOT NULL,
    infinite boolean NOT NULL,
    owner text,
    timeout_secs bigint,
    expires timestamptz,
    principal text
);
CREATE INDEX IF NOT EXISTS davit_locks_root ON davit_locks (root text_pattern_ops);
-- Writes in progress on some instance (see locks.rs): short-lived, so not worth a WAL record.
CREATE UNLOGGED TABLE IF NOT EXISTS davit_writes (
    id uuid NOT NULL,
    path text NOT NULL,
    tree boolean NOT NULL,
    expires timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS davit_writes_path ON davit_writes (path text_pattern_ops);
CREATE INDEX IF NOT EXISTS davit_writes_id ON davit_writes (id);
-- LOCKs waiting for writes on other instances: new writes they would protect wait (locks.rs).
CREATE UNLOGGED TABLE IF NOT EXISTS davit_waiting_locks (
    id uuid PRIMARY KEY,
    root text NOT NULL,
    below text NOT NULL,
    infinite boolean NOT NULL,
    until timestamptz NOT NULL
);

-- Multipart uploads in progress: the sweep aborts those whose writer died.
CREATE TABLE IF NOT EXISTS davit_uploads (
    key text NOT NULL,
    upload_id text NOT NULL,
    started timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (key, upload_id)
);
CREATE SEQUENCE IF NOT EXISTS davit_versions;
-- Resource ids in the UUID version 7 layout (RFC 9562): the creation time in milliseconds
-- first, then random bits. Resources created together get neighbouring ids, so the rows a
-- MOVE of a tree rewrites re-enter the primary key's index on neighbouring pages rather than
-- on one random page each (measured: 29 % less WAL and 15-20 % less time for 10,000 rows).
CREATE OR REPLACE FUNCTION davit_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(r, 14, 3) || substr(r, 17, 16))::uuid
    FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS r) AS random
$$;
CREATE TABLE IF NOT EXISTS davit_resources (
    id uuid PRIMARY KEY,
    parent uuid REFERENCES davit_resources (id),
    name text NOT NULL,
    -- Collections only (files are found by parent and name), so a MOVE of a tree rewrites the
    -- rows of its collections, not of every member. Byte order: the unique index then also
    -- serves prefix scans (LIKE 'a/b/%').
    path text COLLATE \"C\" UNIQUE,
    collection boolean NOT NULL,
    size bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT nextval('davit_versions'),
    blob text,
    created timestamptz NOT NULL DEFAULT clock_timestamp(),
    modified timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (parent, name)
);
DROP INDEX IF EXISTS davit_resources_path;
-- Databases made before files lost their stored paths: drop them once, then hold the rule.
CREATE TABLE IF NOT EXISTS davit_schema (
    id integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM davit_schema WHERE version >= 2) THEN
        ALTER TABLE davit_resources ALTER COLUMN path DROP NOT NULL;
        UPDATE davit_resources SET path = NULL WHERE NOT collection AND path IS NOT NULL;
        ALTER TABLE davit_resources DROP CONSTRAINT IF EXISTS davit_resources_paths;
        ALTER TABLE davit_resources ADD CONSTRAINT davit_resources_paths
            CHECK ((path IS NOT NULL) = collection);
        INSERT INTO davit_schema (id, version) VALUES (1, 2)
            ON CONFLICT (id) DO UPDATE SET version = 2;
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS davit_props (
    resource uuid NOT NULL REFERENCES davit_resources (id) ON DELETE CASCADE,
    ns text NOT NULL,
    local text NOT NULL,
    xml text NOT NULL,
    PRIMARY KEY (resource, ns, local)
);
INSERT INTO davit_resources (id, parent, name, path, collection)
    SELECT gen_random_uuid(), NULL, '', '/', true
    WHERE NOT EXISTS (SELECT 1 FROM davit_resources WHERE path = '/');

-- sync-collection's change log (changes.rs): the last known state of every member a sync has
-- covered, and one state row whose lock serialises every change to the log. Byte order, so
-- that a subtree is the range ['/a/', '/a0').
CREATE TABLE IF NOT EXISTS davit_sync_members (
    path text COLLATE \"C\" PRIMARY KEY,
    parent text COLLATE \"C\" NOT NULL,
    dir boolean NOT NULL,
    fingerprint text NOT NULL,
    seq bigint NOT NULL,
    deleted boolean NOT NULL,
    seen bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS davit_sync_members_seq ON davit_sync_members (seq);
CREATE INDEX IF NOT EXISTS davit_sync_members_parent ON davit_sync_members (parent, seq);
CREATE INDEX IF NOT EXISTS davit_sync_members_tombstones ON davit_sync_members (seq)
    WHERE deleted;
CREATE TABLE IF NOT EXISTS davit_sync_state (
    id integer PRIMARY KEY CHECK (id = 1),
    store text NOT NULL,
    seq bigint NOT NULL,
    generation bigint NOT NULL,
    floor bigint NOT NULL,
    -- Never fewer than the tombstones there are: pruning counts them only when this exceeds
    -- the limit.
    tombstones bigint NOT NULL
);
-- The store id is made once per database, so every instance issues and accepts the same
-- tokens.
INSERT INTO davit_sync_state (id, store, seq, generation, floor, tombstones)
    VALUES (1, replace(gen_random_uuid()::text, '-', ''), 0, 0, 0, 0)
    ON CONFLICT (id) DO NOTHING;
";

impl Pg {
    /// Opens the pool, checks that the server answers within the time-out, and creates the
    /// schema where it is missing.
    pub async fn connect(config: &PgConfig) -> Result<Pg, PgError> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Config(e.to_string()))?;
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        pg.connect_timeout(timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("davit");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| PgError::Config(e.to_string()))?;
        let pg = Pg { pool, pinned: None };
        pg.migrate().await?;
        Ok(pg)
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| PgError::Unavailable(e.to_string()))
    }

    /// A connection for statements that need no transaction of their own; inside a
    /// transaction ([`Pg::begin`]), its connection.
    pub(crate) async fn conn(&self) -> Result<Conn<'_>, PgError> {
        match &self.pinned {
            Some(p) => Ok(Conn::Pinned(p.lock().await)),
            None => Ok(Conn::Pooled(self.client().await?)),
        }
    }

    /// Runs `f` as one transaction: on a pooled connection between BEGIN and COMMIT (ROLLBACK
    /// when it fails); inside a transaction ([`Pg::begin`]), as a savepoint of it, so that a
    /// failed step leaves the enclosing transaction usable.
    pub(crate) async fn atomically<T, E: From<PgError>>(
        &self,
        f: impl AsyncFnOnce(&deadpool_postgres::ClientWrapper) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.pinned {
            None => {
                let begun = Begun(Some(self.client().await?));
                let Some(c) = begun.0.as_deref() else {
                    return Err(PgError::Unavailable("no connection".into()).into());
                };
                c.batch_execute("BEGIN").await.map_err(PgError::from)?;
                match f(c).await {
                    Ok(v) => {
                        c.batch_execute("COMMIT").await.map_err(PgError::from)?;
                        begun.finish();
                        Ok(v)
                    }
                    Err(e) => {
                        if c.batch_execute("ROLLBACK").await.is_ok() {
                            begun.finish();
                        }
                        Err(e)
                    }
                }
            }
            Some(p) => {
                let pinned = p.lock().await;
                let c = pinned.client()?;
                c.batch_execute("SAVEPOINT davit_step")
                    .await
                    .map_err(PgError::from)?;
                match f(c).await {
                    Ok(v) => {
                        c.batch_execute("RELEASE SAVEPOINT davit_step")
                            .await
                            .map_err(PgError::from)?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = c
                            .batch_execute(
                                "ROLLBACK TO SAVEPOINT davit_step; RELEASE SAVEPOINT davit_step",
                            )
                            .await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// A handle whose statements all run in one new transaction, until [`commit`](Self::commit)
    /// or [`rollback`](Self::rollback).
    pub async fn begin(&self) -> Result<Pg, PgError> {
        let conn = self.client().await?;
        let pinned = Pinned { conn: Some(conn) };
        pinned.client()?.batch_execute("BEGIN").await?;
        Ok(Pg {
            pool: self.pool.clone(),
            pinned: Some(Arc::new(tokio::sync::Mutex::new(pinned))),
        })
    }

    /// True for a handle made by [`begin`](Self::begin).
    pub fn in_transaction(&self) -> bool {
        self.pinned.is_some()
    }

    /// Commits the transaction of a handle made by [`begin`](Self::begin).
    pub async fn commit(&self) -> Result<(), PgError> {
        match &self.pinned {
            Some(p) => p.lock().await.finish("COMMIT").await,
            None => Ok(()),
        }
    }

    /// Rolls back the transaction of a handle made by [`begin`](Self::begin).
    pub async fn rollback(&self) -> Result<(), PgError> {
        match &self.pinned {
            Some(p) => p.lock().await.finish("ROLLBACK").await,
            None => Ok(()),
        }
    }

    async fn migrate(&self) -> Result<(), PgError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_when_settings_are_printed() {
        assert_eq!(
            redact("postgres://davit:s3cret@db.example:5432/davit"),
            "postgres://davit:(set)@db.example:5432/davit"
        );
        assert_eq!(
            redact("postgres://db.example/davit"),
            "postgres://db.example/davit"
        );
        assert_eq!(
            redact("host=db port=5432 user=davit password=s3cret dbname=davit"),
            "host=db port=5432 user=davit password=(set) dbname=davit"
        );
    }
}
