//! `davit import`: loads a tree served by another backend (the directory one, with its dead
//! properties) into the distributed store.
//!
//! Resources keep their `DAV:resource-id`, their dates and their dead properties. A file is
//! streamed to a new object, then its row and its properties are committed in one
//! transaction, so an import cut short leaves whole resources (and at most one orphan object
//! per file in flight, for the sweep). Running it again continues: a file whose row already has
//! the source's size and modification time is not read again; anything else is brought up to
//! date. Resources removed from the source since an earlier run are left in place.

use crate::blobs::Blobs;
use crate::namespace::{rows_at_many, AtMany};
use crate::pg::Pg;
use davit_proto::href::DavPath;
use davit_server::props::{DeadProp, PropStore};
use davit_server::storage::{Kind, Meta, Storage};
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many files are uploaded at once.
const PARALLEL_FILES: usize = 8;

/// What an import has done so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Collections created.
    pub collections: u64,
    /// Files whose content was copied.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Resources already in the store as they are in the source (content not read again).
    pub unchanged: u64,
    /// Dead properties written.
    pub properties: u64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the source failed.
    #[error("reading {path}: {source}")]
    Source {
        /// Where.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Reading the source's dead properties failed.
    #[error("reading the dead properties of {path}: {reason}")]
    Properties {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
    /// The store holds something else there.
    #[error("{path} is a {found} in the store but a {wanted} in the source; move one away")]
    Conflict {
        /// Where.
        path: String,
        /// What the store has.
        found: &'static str,
        /// What the source has.
        wanted: &'static str,
    },
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Store(String),
    /// The object store failed.
    #[error("object store: {0}")]
    Blobs(#[from] crate::blobs::BlobError),
}

impl From<crate::pg::PgError> for ImportError {
    fn from(e: crate::pg::PgError) -> Self {
        ImportError::Store(e.to_string())
    }
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(e: tokio_postgres::Error) -> Self {
        ImportError::Store(e.to_string())
    }
}

/// What the store already has at a path.
struct Existing {
    id: uuid::Uuid,
    collection: bool,
    size: i64,
    modified_us: i64,
}

/// Microseconds since the epoch: PostgreSQL's timestamp precision, so a date read back
/// compares equal to the one written.
fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// An import into one distributed store.
#[derive(Debug, Clone)]
pub struct Importer {
    pg: Pg,
    blobs: Blobs,
}

impl Importer {
    /// An import into the namespace behind `pg` and the objects of `blobs`.
    pub fn new(pg: Pg, blobs: Blobs) -> Self {
        Importer { pg, blobs }
    }

    /// Copies every resource of `source` (with its dead properties from `props`) that the
    /// store does not have as it is, calling `report` after each listing batch.
    pub async fn run<S: Storage, P: PropStore>(
        &self,
        source: &S,
        props: &P,
        mut report: impl FnMut(&Progress),
    ) -> Result<Progress, ImportError> {
        let mut progress = Progress::default();
        let root = DavPath::root();
        let root_props = self
            .source_props(props, std::slice::from_ref(&root))
            .await?;
        let root_id = self.existing(std::slice::from_ref(&root)).await?;
        if let (Some(existing), Some(p)) = (root_id.get("/"), root_props.into_iter().next()) {
            progress.properties += self.replace_props(existing.id, &p).await?;
        }
        let mut pending = vec![root];
        while let Some(dir) = pending.pop() {
            let listing = source.list(&dir).await.map_err(|e| ImportError::Source {
                path: dir.as_str().to_owned(),
                source: e,
            })?;
            let mut listing = std::pin::pin!(listing);
            while let Some(batch) = listing.next().await {
                let batch = batch.map_err(|e| ImportError::Source {
                    path: dir.as_str().to_owned(),
                    source: e,
                })?;
                let members: Vec<(DavPath, Meta)> = batch
                    .into_iter()
                    .filter_map(|e| dir.join(&e.name).ok().map(|p| (p, e.meta)))
                    .collect();
                let paths: Vec<DavPath> = members.iter().map(|(p, _)| p.clone()).collect();
                let dead = self.source_props(props, &paths).await?;
                let existing = self.existing(&paths).await?;
                let mut files = Vec::new();
                for ((path, meta), dead) in members.into_iter().zip(dead) {
                    let found = existing.get(path.as_str());
                    match meta.kind {
                        Kind::Dir => {
                            let id = match found {
                                Some(e) if e.collection => {
                                    progress.unchanged += 1;
                                    if e.modified_us != micros(meta.modified) {
                                        self.redate(e.id, meta.modified).await?;
                                    }
                                    e.id
                                }
                                Some(_) => return Err(conflict(&path, "file", "collection")),
                                None => {
                                    progress.collections += 1;
                                    self.create_collection(source, &path, &meta).await?
                                }
                            };
                            progress.properties += self.replace_props(id, &dead).await?;
                            pending.push(path);
                        }
                        Kind::File => match found {
                            Some(e) if e.collection => {
                                return Err(conflict(&path, "collection", "file"))
                            }
                            Some(e)
                                if u64::try_from(e.size).ok() == Some(meta.len)
                                    && e.modified_us == micros(meta.modified) =>
                            {
                                progress.unchanged += 1;
                                progress.properties += self.replace_props(e.id, &dead).await?;
                            }
                            _ => files.push((path, meta, dead)),
                        },
                    }
                }
                let copied: Vec<(u64, u64)> = futures_util::stream::iter(files)
                    .map(|(path, meta, dead)| self.copy_file(source, path, meta, dead))
                    .buffer_unordered(PARALLEL_FILES)
                    .try_collect()
                    .await?;
                for (bytes, props) in copied {
                    progress.files += 1;
                    progress.bytes += bytes;
                    progress.properties += props;
                }
                report(&progress);
            }
        }
        // A bulk load leaves the planner's statistics and the visibility map behind: refresh
        // them now, as after any restore, rather than leave the first requests (and a MOVE
        // over freshly loaded rows) to set hint bits and run on stale estimates.
        let conn = self.pg.conn().await?;
        conn.client()?
            .batch_execute("VACUUM (ANALYZE) davit_resources, davit_props")
            .await?;
        Ok(progress)
    }

    async fn source_props<P: PropStore>(
        &self,
        props: &P,
        paths: &[DavPath],
    ) -> Result<Vec<Vec<DeadProp>>, ImportError> {
        props
            .get_many(paths.to_vec())
            .await
            .map_err(|e| ImportError::Properties {
                path: paths.first().map_or("/", |p| p.as_str()).to_owned(),
                reason: e.to_string(),
            })
    }

    /// The rows the store has at `paths`, by path: one query.
    async fn existing(&self, paths: &[DavPath]) -> Result<HashMap<String, Existing>, ImportError> {
        let conn = self.pg.conn().await?;
        let at = AtMany::new(paths);
        let rows = conn
            .client()?
            .query(
                &rows_at_many("r.id, r.collection, r.size, r.modified"),
                &[&at.full, &at.up, &at.name],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    Existing {
                        id: r.get(1),
                        collection: r.get(2),
                        size: r.get(3),
                        modified_us: micros(r.get::<_, SystemTime>(4)),
                    },
                )
            })
            .collect())
    }

    /// The id a new row takes: the source's resource id, unless the store already uses it
    /// (a second binding of one source resource becomes a resource of its own).
    async fn fresh_id(
        tx: &tokio_postgres::Client,
        wanted: uuid::Uuid,
    ) -> Result<uuid::Uuid, ImportError> {
        let taken = tx
            .query_opt("SELECT 1 FROM davit_resources WHERE id = $1", &[&wanted])
            .await?
            .is_some();
        Ok(if taken { uuid::Uuid::new_v4() } else { wanted })
    }

    async fn create_collection<S: Storage>(
        &self,
        source: &S,
        path: &DavPath,
        meta: &Meta,
    ) -> Result<uuid::Uuid, ImportError> {
        let wanted = source.resource_id(&meta.identity);
        let created = meta.created.unwrap_or(meta.modified);
        let modified = meta.modified;
        self.pg
            .atomically(async |tx| {
                let parent = parent_id(tx, path).await?;
                let id = Self::fresh_id(tx, wanted).await?;
                tx.execute(
                    "INSERT INTO davit_resources \
                     (id, parent, name, path, collection, created, modified) \
                     VALUES ($1, $2, $3, $4, true, $5, $6)",
                    &[
                        &id,
                        &parent,
                        &path.name().unwrap_or(""),
                        &path.as_str(),
                        &created,
                        &modified,
                    ],
                )
                .await?;
                Ok::<_, ImportError>(id)
            })
            .await
    }

    /// Streams one file into a new object, then points its row at it and sets its
    /// properties in one transaction. Returns the bytes and properties written.
    async fn copy_file<S: Storage>(
        &self,
        source: &S,
        path: DavPath,
        meta: Meta,
        dead: Vec<DeadProp>,
    ) -> Result<(u64, u64), ImportError> {
        let source_error = |e: io::Error| ImportError::Source {
            path: path.as_str().to_owned(),
            source: e,
        };
        let wanted = source.resource_id(&meta.identity);
        let (file, _) = source.open(&path).await.map_err(source_error)?;
        let key = format!(
            "blobs/{}/{}",
            wanted.simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut writer = self.blobs.writer(&key);
        let mut chunks = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10);
        let mut failed = None;
        while let Some(chunk) = chunks.next().await {
            let written = match chunk {
                Ok(bytes) => writer.write(bytes).await.map_err(ImportError::from),
                Err(e) => Err(source_error(e)),
            };
            if let Err(e) = written {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            let _ = writer.abort().await;
            return Err(e);
        }
        let size = writer.finish().await?;
        let blob: Option<&str> = (size > 0).then_some(key.as_str());
        let size_db = i64::try_from(size).unwrap_or(i64::MAX);
        let created = meta.created.unwrap_or(meta.modified);
        let modified = meta.modified;
        let committed = self
            .pg
            .atomically(async |tx| {
                let parent = parent_id(tx, &path).await?;
                let name = path.name().unwrap_or("");
                let old = tx
                    .query_opt(
                        "SELECT id, collection, blob FROM davit_resources \
                         WHERE parent = $1 AND name = $2 FOR UPDATE",
                        &[&parent, &name],
                    )
                    .await?;
                let (id, garbage) = match old {
                    Some(row) if row.get::<_, bool>(1) => {
                        return Err(conflict(&path, "collection", "file"))
                    }
                    Some(row) => {
                        let id: uuid::Uuid = row.get(0);
                        tx.execute(
                            "UPDATE davit_resources SET blob = $2, size = $3, \
                             version = nextval('davit_versions'), \
                             modified = $4 WHERE id = $1",
                            &[&id, &blob, &size_db, &modified],
                        )
                        .await?;
                        (id, row.get::<_, Option<String>>(2))
                    }
                    None => {
                        let id = Self::fresh_id(tx, wanted).await?;
                        tx.execute(
                            "INSERT INTO davit_resources \
                             (id, parent, name, collection, blob, size, created, modified) \
                             VALUES ($1, $2, $3, false, $4, $5, $6, $7)",
                            &[&id, &parent, &name, &blob, &size_db, &created, &modified],
                        )
                        .await?;
                        (id, None)
                    }
                };
                let props = replace_props_in(tx, id, &dead).await?;
                Ok::<_, ImportError>((props, garbage))
            })
            .await;
        match committed {
            Ok((props, garbage)) => {
                if let Some(old) = garbage {
                    if let Err(e) = self.blobs.delete(&old).await {
                        tracing::warn!(key = %old, error = %e, "an unused object stays until the sweep");
                    }
                }
                Ok((size, props))
            }
            Err(e) => {
                if blob.is_some() {
                    let _ = self.blobs.delete(&key).await;
                }
                Err(e)
            }
        }
    }

    /// A collection's members changed in the source since the last run: so did its date.
    async fn redate(&self, id: uuid::Uuid, modified: SystemTime) -> Result<(), ImportError> {
        let conn = self.pg.conn().await?;
        conn.client()?
            .execute(
                "UPDATE davit_resources SET modified = $2 WHERE id = $1",
                &[&id, &modified],
            )
            .await?;
        Ok(())
    }

    async fn replace_props(&self, id: uuid::Uuid, dead: &[DeadProp]) -> Result<u64, ImportError> {
        self.pg
            .atomically(async |tx| replace_props_in(tx, id, dead).await)
            .await
    }
}

/// Makes `id`'s dead properties exactly `dead`; returns how many were written.
async fn replace_props_in(
    tx: &tokio_postgres::Client,
    id: uuid::Uuid,
    dead: &[DeadProp],
) -> Result<u64, ImportError> {
    tx.execute("DELETE FROM davit_props WHERE resource = $1", &[&id])
        .await?;
    if dead.is_empty() {
        return Ok(0);
    }
    let ns: Vec<&str> = dead.iter().map(|p| p.name.ns.as_str()).collect();
    let local: Vec<&str> = dead.iter().map(|p| p.name.local.as_str()).collect();
    let xml: Vec<&str> = dead.iter().map(|p| p.xml.as_str()).collect();
    Ok(tx
        .execute(
            "INSERT INTO davit_props (resource, ns, local, xml) \
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])",
            &[&id, &ns, &local, &xml],
        )
        .await?)
}

async fn parent_id(tx: &tokio_postgres::Client, path: &DavPath) -> Result<uuid::Uuid, ImportError> {
    let parent = path.parent().unwrap_or_else(DavPath::root);
    tx.query_opt(
        "SELECT id FROM davit_resources WHERE path = $1 AND collection",
        &[&parent.as_str()],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or_else(|| ImportError::Store(format!("no collection {} in the store", parent.as_str())))
}

fn conflict(path: &DavPath, found: &'static str, wanted: &'static str) -> ImportError {
    ImportError::Conflict {
        path: path.as_str().to_owned(),
        found,
        wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn from_micros(us: i64) -> SystemTime {
        if us >= 0 {
            UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
        }
    }

    #[test]
    fn dates_survive_the_round_trip_at_microsecond_precision() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let back = from_micros(micros(t));
        assert_eq!(back, UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000));
        assert_eq!(micros(back), micros(t));
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(micros(before), -5);
        assert_eq!(from_micros(-5), before);
    }
}
