//! The namespace in PostgreSQL: one row per resource (collections too), with its stable id,
//! parent, name, size, version and content object. Collections also keep their full path
//! (unique, in byte order, so a subtree is one prefix range); files are found by their
//! parent's path and their name. A path is looked up with one indexed query; a MOVE of a tree
//! is one transaction that rewrites the paths of its collections only (11 rows, not 10,011,
//! for ten folders of 1,000 files), and no content object is touched, because objects are
//! keyed by resource id and version.
//!
//! This is the namespace half of the backend's `Storage`: content
//! objects are written by [`crate::Blobs`] before [`Namespace::commit_file`] points a row at
//! them.

use crate::pg::{Pg, PgError};
use davit_proto::href::DavPath;
use davit_server::storage::{Entry, Identity, Kind, Meta};
use std::io;
use std::time::SystemTime;
use tokio_postgres::Row;

/// One resource's row.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its `DAV:resource-id`.
    pub id: uuid::Uuid,
    /// What handlers see.
    pub meta: Meta,
    /// The object holding a file's content (none for collections and empty files).
    pub blob: Option<String>,
}

const COLUMNS: &str = "id, name, collection, size, version, blob, created, modified";

fn io_error(e: PgError) -> io::Error {
    let kind = if e.is_unavailable() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

impl From<PgError> for io::Error {
    fn from(e: PgError) -> Self {
        io_error(e)
    }
}

fn pg(e: tokio_postgres::Error) -> io::Error {
    io_error(PgError::Query(e))
}

fn resource(row: &Row) -> Resource {
    let id: uuid::Uuid = row.get(0);
    let collection: bool = row.get(2);
    let size: i64 = row.get(3);
    let version: i64 = row.get(4);
    let created: SystemTime = row.get(6);
    let modified: SystemTime = row.get(7);
    Resource {
        id,
        meta: Meta {
            kind: if collection { Kind::Dir } else { Kind::File },
            len: u64::try_from(size).unwrap_or(0),
            modified,
            created: Some(created),
            // The version comes from one sequence: different after every write, the same on
            // every instance.
            etag: format!("\"{}-{version:x}\"", &id.simple().to_string()[..8]),
            identity: Identity {
                node: id.as_u128(),
                born: 0,
            },
        },
        blob: row.get(5),
    }
}

/// A path as the table finds it: a collection by its stored path, a file by its parent's path
/// and its name (the root has no parent).
#[derive(Debug)]
pub(crate) struct At<'a> {
    pub(crate) full: &'a str,
    up: Option<DavPath>,
    pub(crate) name: &'a str,
}

impl<'a> At<'a> {
    pub(crate) fn new(path: &'a DavPath) -> Self {
        At {
            full: path.as_str(),
            up: path.parent(),
            name: path.name().unwrap_or(""),
        }
    }

    /// The parent collection's path, `None` for the root.
    pub(crate) fn up(&self) -> Option<&str> {
        self.up.as_ref().map(DavPath::as_str)
    }
}

/// The columns of [`At`] for many paths at once, as arrays for `unnest`.
#[derive(Debug, Default)]
pub(crate) struct AtMany<'a> {
    pub(crate) full: Vec<&'a str>,
    pub(crate) up: Vec<Option<String>>,
    pub(crate) name: Vec<&'a str>,
}

impl<'a> AtMany<'a> {
    pub(crate) fn new(paths: &'a [DavPath]) -> Self {
        let mut many = AtMany::default();
        for p in paths {
            many.full.push(p.as_str());
            many.up.push(p.parent().map(|p| p.as_str().to_owned()));
            many.name.push(p.name().unwrap_or(""));
        }
        many
    }
}

/// SQL for the id of the resource at [`At`] `$n` (its path), `$n+1` (its parent's path) and
/// `$n+2` (its name); NULL when there is none.
pub(crate) fn id_at(n: usize) -> String {
    format!(
        "(SELECT id FROM davit_resources WHERE path = ${n} \
          UNION ALL SELECT id FROM davit_resources \
          WHERE parent = (SELECT id FROM davit_resources WHERE path = ${}) \
          AND name = ${} AND path IS NULL LIMIT 1)",
        n + 1,
        n + 2
    )
}

/// SQL selecting `columns` of row `r` and `k.want` for every `k` of [`AtMany`] `$1`-`$3`
/// that has a resource: the paths of a listing's batch in one query.
pub(crate) fn rows_at_many(columns: &str) -> String {
    format!(
        "SELECT k.want, {columns} FROM unnest($1::text[], $2::text[], $3::text[]) AS k(want, up, name) \
             JOIN davit_resources r ON r.path = k.want \
         UNION ALL \
         SELECT k.want, {columns} FROM unnest($1::text[], $2::text[], $3::text[]) AS k(want, up, name) \
             JOIN davit_resources c ON c.path = k.up \
             JOIN davit_resources r ON r.parent = c.id AND r.name = k.name AND r.path IS NULL"
    )
}

/// SQL for the full path of row `r`, whose parent row `par` is joined on the left.
pub(crate) const FULL_PATH: &str = "coalesce(r.path, CASE WHEN par.path = '/' \
     THEN '/' || r.name ELSE par.path || '/' || r.name END)";

/// SQL for the ids of the collections at and below the path `$path` (`$pattern` from
/// [`below`]): the parents of everything in that tree. Empty for a file.
pub(crate) fn dirs_at(path: usize, pattern: usize) -> String {
    format!("SELECT id FROM davit_resources WHERE path = ${path} OR path LIKE ${pattern}")
}

/// The rows [`tree_rows`] reads: the resources alone, or each with its parent row `par` (for
/// [`FULL_PATH`]).
pub(crate) const ROWS: &str = "davit_resources r";
pub(crate) const ROWS_WITH_PARENT: &str =
    "davit_resources r LEFT JOIN davit_resources par ON par.id = r.parent";

/// SQL selecting `columns` from `rows` ([`ROWS`] or [`ROWS_WITH_PARENT`]) for the resource at
/// [`At`] `$n`..`$n+2` and, where the SQL condition `members` holds, everything below it: the
/// members of the collections at and below the path `$n` (pattern `$pattern`). Two indexed
/// lookups in a union: written as one condition with `OR`, PostgreSQL scans the whole table.
pub(crate) fn tree_rows(
    columns: &str,
    rows: &str,
    n: usize,
    pattern: usize,
    members: &str,
) -> String {
    format!(
        "SELECT {columns} FROM {rows} WHERE r.id = {id} \
         UNION ALL SELECT {columns} FROM {rows} WHERE {members} AND r.parent IN ({dirs})",
        id = id_at(n),
        dirs = dirs_at(n, pattern)
    )
}

/// A LIKE pattern for everything strictly below `path`.
pub(crate) fn below(path: &DavPath) -> String {
    let mut pattern = String::with_capacity(path.as_str().len() + 2);
    for c in path.as_str().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    if !path.is_root() {
        pattern.push('/');
    }
    pattern.push('%');
    pattern
}

/// One resource a COPY takes.
#[derive(Debug, Clone)]
pub struct CopyItem {
    /// Its path relative to the copied resource: "" for that one, else `/a/b`.
    pub rel: String,
    /// A collection.
    pub collection: bool,
    /// Its content object (for the copy: the copy's object).
    pub blob: Option<String>,
    /// Its size.
    pub size: u64,
}

/// The namespace of a store.
#[derive(Debug, Clone)]
pub struct Namespace {
    pg: Pg,
}

impl Namespace {
    /// The namespace in the database behind `pg` (created by [`Pg::connect`], with its root).
    pub fn new(pg: Pg) -> Self {
        Namespace { pg }
    }

    /// The database's version for the cache: the next transaction id, when no transaction
    /// that writes is in progress (any write anywhere since then, by any instance, takes a
    /// later id); `None` while one is, or when the database does not answer.
    pub(crate) async fn version(&self) -> Option<u64> {
        let c = self.pg.client().await.ok()?;
        let st = c
            .prepare_cached(
                "SELECT pg_snapshot_xmax(s)::text::bigint, \
                        NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(s)) \
                 FROM pg_current_snapshot() s",
            )
            .await
            .ok()?;
        let row = c.query_one(&st, &[]).await.ok()?;
        let next: i64 = row.try_get(0).ok()?;
        let idle: bool = row.try_get(1).ok()?;
        idle.then_some(next as u64)
    }

    /// The resource at `path`, if any.
    pub async fn get(&self, path: &DavPath) -> io::Result<Option<Resource>> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        // `id_at`'s two lookups, selecting the row itself: no extra probe of the primary key
        // on the path every request takes.
        let stmt = Box::pin(client.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM davit_resources WHERE path = $1 \
             UNION ALL SELECT {COLUMNS} FROM davit_resources \
             WHERE parent = (SELECT id FROM davit_resources WHERE path = $2) \
             AND name = $3 AND path IS NULL"
        )))
        .await
        .map_err(pg)?;
        let at = At::new(path);
        let row = client
            .query_opt(&stmt, &[&at.full, &at.up(), &at.name])
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(resource))
    }

    /// The resource at `path`, or `NotFound`.
    pub async fn meta(&self, path: &DavPath) -> io::Result<Resource> {
        self.get(path)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// The id of the collection at `path` (`NotFound`, or `NotADirectory` for a file).
    pub async fn collection_id(&self, path: &DavPath) -> io::Result<uuid::Uuid> {
        let conn = self.pg.conn().await?;
        Self::collection_in(conn.client()?, path, "").await
    }

    /// The id of the collection at `path`, read with `lock` (`""` or `"FOR SHARE"`).
    async fn collection_in(
        client: &deadpool_postgres::ClientWrapper,
        path: &DavPath,
        lock: &str,
    ) -> io::Result<uuid::Uuid> {
        let stmt = Box::pin(client.prepare_cached(&format!(
            "SELECT id, collection FROM davit_resources WHERE path = $1 {lock}"
        )))
        .await
        .map_err(pg)?;
        let row = client
            .query_opt(&stmt, &[&path.as_str()])
            .await
            .map_err(pg)?;
        match row {
            Some(row) if row.get::<_, bool>(1) => Ok(row.get(0)),
            Some(_) => Err(io::ErrorKind::NotADirectory.into()),
            // Only collections have a stored path: whether a file is there decides the error.
            None => {
                let at = At::new(path);
                let file = client
                    .query_opt(
                        &format!("SELECT 1 WHERE {} IS NOT NULL", id_at(1)),
                        &[&at.full, &at.up(), &at.name],
                    )
                    .await
                    .map_err(pg)?;
                Err(if file.is_some() {
                    io::ErrorKind::NotADirectory
                } else {
                    io::ErrorKind::NotFound
                }
                .into())
            }
        }
    }

    /// Up to `limit` members of collection `parent` in name order, after the name `after`:
    /// one indexed query per page, so a listing of any size is read a page at a time.
    pub async fn list_page(
        &self,
        parent: uuid::Uuid,
        after: Option<&str>,
        limit: i64,
    ) -> io::Result<Vec<Entry>> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let stmt = Box::pin(client.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM davit_resources WHERE parent = $1 \
                 AND ($2::text IS NULL OR name > $2) ORDER BY name LIMIT $3"
        )))
        .await
        .map_err(pg)?;
        let rows = client
            .query(&stmt, &[&parent, &after, &limit])
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| Entry {
                shared: false,
                name: row.get(1),
                meta: resource(row).meta,
            })
            .collect())
    }

    /// The parent collection's id for a new member at `path`, kept from changing until the
    /// transaction ends: `NotFound` when it does not exist, `NotADirectory` when it is a file.
    async fn parent_id(
        tx: &deadpool_postgres::ClientWrapper,
        path: &DavPath,
    ) -> io::Result<uuid::Uuid> {
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists))?;
        Self::collection_in(tx, &parent, "FOR SHARE").await
    }

    /// Creates the collection at `path` (its parent must exist; nothing may be there).
    pub async fn create_dir(&self, path: &DavPath) -> io::Result<Resource> {
        self.pg
            .atomically(async |tx| {
                let parent = Self::parent_id(tx, path).await?;
                let row = tx
                    .query_opt(
                        &format!(
                            "INSERT INTO davit_resources (id, parent, name, path, collection) \
                         VALUES (davit_uuid7(), $1, $2, $3, true) \
                         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
                        ),
                        &[&parent, &path.name().unwrap_or(""), &path.as_str()],
                    )
                    .await
                    .map_err(pg)?
                    .ok_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists))?;
                Ok(resource(&row))
            })
            .await
    }

    /// Points the file at `path` (created when unmapped) at the content object `blob` of
    /// `size` bytes, in one transaction: readers see the old content or the new, whole. Returns
    /// the file and the object it pointed at before (now garbage).
    pub async fn commit_file(
        &self,
        path: &DavPath,
        blob: Option<&str>,
        size: u64,
    ) -> io::Result<(Resource, Option<String>)> {
        let size = i64::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        self.pg
            .atomically(async |tx| {
            let parent = Self::parent_id(tx, path).await?;
            let name = path.name().unwrap_or("");
            // A PUT that found nothing at `path` may meet another creating it at the same
            // moment: its INSERT then waits for that one's commit and inserts nothing, and
            // the next round replaces the row the other made (rather than a unique violation,
            // a 500). Read committed: each round's SELECT sees what committed before it.
            let mut rounds = 0;
            let (row, garbage) = loop {
                rounds += 1;
                let select = Box::pin(tx.prepare_cached(
                    "SELECT collection, blob, id FROM davit_resources \
                     WHERE parent = $1 AND name = $2 FOR UPDATE",
                ))
                .await
                .map_err(pg)?;
                let old = tx
                    .query_opt(&select, &[&parent, &name])
                    .await
                    .map_err(pg)?;
                match old {
                    Some(old) if old.get::<_, bool>(0) => {
                        return Err(io::ErrorKind::IsADirectory.into())
                    }
                    Some(old) => {
                        let update = Box::pin(tx.prepare_cached(&format!(
                            "UPDATE davit_resources SET blob = $2, size = $3, \
                             version = nextval('davit_versions'), modified = clock_timestamp() \
                             WHERE id = $1 RETURNING {COLUMNS}"
                        )))
                        .await
                        .map_err(pg)?;
                        let id: uuid::Uuid = old.get(2);
                        let row = tx
                            .query_one(&update, &[&id, &blob, &size])
                            .await
                            .map_err(pg)?;
                        break (row, old.get::<_, Option<String>>(1));
                    }
                    None => {
                        let insert = Box::pin(tx.prepare_cached(&format!(
                            "INSERT INTO davit_resources (id, parent, name, collection, blob, size) \
                             VALUES (davit_uuid7(), $1, $2, false, $3, $4) \
                             ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
                        )))
                        .await
                        .map_err(pg)?;
                        let row = tx
                            .query_opt(&insert, &[&parent, &name, &blob, &size])
                            .await
                            .map_err(pg)?;
                        match row {
                            Some(row) => break (row, None),
                            None if rounds < 5 => continue,
                            None => {
                                return Err(io::Error::other(format!(
                                    "{path}: created and removed by others five times over"
                                )))
                            }
                        }
                    }
                }
            };
            Ok((resource(&row), garbage))
            })
            .await
    }

    /// Removes the resource at `path` and everything below it in one transaction; returns the
    /// content objects that are now garbage.
    pub async fn delete_tree(&self, path: &DavPath) -> io::Result<Vec<String>> {
        if path.is_root() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let at = At::new(path);
        // The resource, and every member of the collections at and below it: the whole tree.
        let rows = client
            .query(
                &format!(
                    "WITH t AS (SELECT {} AS id) \
                     DELETE FROM davit_resources WHERE id IN ({}) \
                     RETURNING blob, coalesce(id = (SELECT id FROM t), false)",
                    id_at(1),
                    tree_rows("r.id", ROWS, 1, 4, "true")
                ),
                &[&at.full, &at.up(), &at.name, &below(path)],
            )
            .await
            .map_err(pg)?;
        if !rows.iter().any(|r| r.get::<_, bool>(1)) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .collect())
    }

    /// Moves the tree at `from` to the unmapped `to`, in one transaction whatever its size.
    pub async fn rename(&self, from: &DavPath, to: &DavPath) -> io::Result<()> {
        if to.starts_with(from) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        self.pg
            .atomically(async |tx| {
                let parent = Self::parent_id(tx, to).await?;
                let name = to.name().unwrap_or("");
                if tx
                    .query_opt(
                        "SELECT 1 FROM davit_resources WHERE parent = $1 AND name = $2",
                        &[&parent, &name],
                    )
                    .await
                    .map_err(pg)?
                    .is_some()
                {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let at = At::new(from);
                let moved = tx
                    .execute(
                        &format!(
                            "UPDATE davit_resources SET parent = $4, name = $5, \
                             path = CASE WHEN collection THEN $6 END WHERE id = {}",
                            id_at(1)
                        ),
                        &[&at.full, &at.up(), &at.name, &parent, &name, &to.as_str()],
                    )
                    .await
                    .map_err(pg)?;
                if moved == 0 {
                    return Err(io::ErrorKind::NotFound.into());
                }
                // Members keep their parent and name; only the paths of the collections among
                // them change, by the prefix (files have none).
                let cut = i32::try_from(from.as_str().chars().count()).unwrap_or(i32::MAX);
                tx.execute(
                "UPDATE davit_resources SET path = $1 || substr(path, $2 + 1) WHERE path LIKE $3",
                &[&to.as_str(), &cut, &below(from)],
            )
            .await
            .map_err(pg)?;
                Ok(())
            })
            .await
    }

    /// What a COPY of `from` takes: the resource and (with `tree`) everything below it, parents
    /// before their members, each with its path relative to `from` ("" for `from` itself).
    pub async fn copy_plan(&self, from: &DavPath, tree: bool) -> io::Result<Vec<CopyItem>> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let at = At::new(from);
        // The resource, and with `tree` every member of the collections at and below it.
        let rows = client
            .query(
                &format!(
                    "SELECT * FROM ({}) t ORDER BY full_path",
                    tree_rows(
                        &format!(
                            "{FULL_PATH} COLLATE \"C\" AS full_path, r.collection, r.blob, r.size"
                        ),
                        ROWS_WITH_PARENT,
                        1,
                        4,
                        "$5"
                    )
                ),
                &[&at.full, &at.up(), &at.name, &below(from), &tree],
            )
            .await
            .map_err(pg)?;
        if rows.is_empty() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let cut = if from.is_root() {
            0
        } else {
            from.as_str().len()
        };
        Ok(rows
            .iter()
            .map(|r| {
                let path: String = r.get(0);
                CopyItem {
                    rel: path.get(cut..).unwrap_or("").to_owned(),
                    collection: r.get(1),
                    blob: r.get(2),
                    size: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                }
            })
            .collect())
    }

    /// Creates the copies of `items` (from [`Namespace::copy_plan`], their `blob`s replaced
    /// by the copies' objects) at the unmapped `to`, in one transaction.
    pub async fn insert_copies(&self, to: &DavPath, items: &[CopyItem]) -> io::Result<()> {
        self.pg
            .atomically(async |tx| {
            let root_parent = Self::parent_id(tx, to).await?;
            let mut ids: std::collections::HashMap<String, uuid::Uuid> = Default::default();
            for item in items {
                let path = if item.rel.is_empty() {
                    to.clone()
                } else {
                    let rel = DavPath::parse(&item.rel)
                        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
                    DavPath::parse(&format!(
                        "{}{}",
                        to.as_str().trim_end_matches('/'),
                        rel.as_str()
                    ))
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?
                };
                let parent = if item.rel.is_empty() {
                    root_parent
                } else {
                    // Parents come before their members: the member's parent is already made.
                    let up = item.rel.rsplit_once('/').map_or("", |(up, _)| up);
                    *ids.get(up)
                        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?
                };
                let size = i64::try_from(item.size).unwrap_or(i64::MAX);
                let row = tx
                    .query_opt(
                        "INSERT INTO davit_resources (id, parent, name, path, collection, blob, size) \
                         VALUES (davit_uuid7(), $1, $2, CASE WHEN $4 THEN $3 END, $4, $5, $6) \
                         ON CONFLICT DO NOTHING RETURNING id",
                        &[
                            &parent,
                            &path.name().unwrap_or(""),
                            &path.as_str(),
                            &item.collection,
                            &item.blob,
                            &size,
                        ],
                    )
                    .await
                    .map_err(pg)?
                    .ok_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists))?;
                ids.insert(item.rel.clone(), row.get(0));
            }
            Ok(())
            })
            .await
    }

    /// Which of `keys` some resource points at.
    pub async fn referenced(
        &self,
        keys: &[String],
    ) -> io::Result<std::collections::HashSet<String>> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let rows = client
            .query(
                "SELECT blob FROM davit_resources WHERE blob = ANY($1)",
                &[&keys],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Marks `path` as changed now.
    pub async fn touch(&self, path: &DavPath) -> io::Result<()> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let at = At::new(path);
        let n = client
            .execute(
                &format!(
                    "UPDATE davit_resources SET modified = clock_timestamp() WHERE id = {}",
                    id_at(1)
                ),
                &[&at.full, &at.up(), &at.name],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(())
    }

    /// Resources below `path` (not counting it), up to `max + 1`.
    pub async fn count_tree(&self, path: &DavPath, max: u64) -> io::Result<u64> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let limit = i64::try_from(max.saturating_add(1)).unwrap_or(i64::MAX);
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM davit_resources \
                     WHERE parent IN ({}) LIMIT $3) t",
                    dirs_at(1, 2)
                ),
                &[&path.as_str(), &below(path), &limit],
            )
            .await
            .map_err(pg)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// The bytes of content at and below `path`.
    pub async fn tree_size(&self, path: &DavPath) -> io::Result<u64> {
        let conn = self.pg.conn().await?;
        let client = conn.client()?;
        let at = At::new(path);
        let row = client
            .query_one(
                &format!(
                    "SELECT coalesce(sum(size), 0)::bigint FROM ({}) t",
                    tree_rows("r.size", ROWS, 1, 4, "true")
                ),
                &[&at.full, &at.up(), &at.name, &below(path)],
            )
            .await
            .map_err(pg)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}
