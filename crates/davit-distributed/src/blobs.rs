//! Content in S3-compatible object storage (AWS S3, Ceph RGW, MinIO, Garage), through the
//! object_store crate: the `[blobs]` settings, streamed writes (one PUT below the part size,
//! multipart above it, so memory stays at a few parts whatever the size), ranged reads,
//! server-side copies, deletes and listings (for the garbage sweep).

use crate::pg::Pg;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// The `[blobs]` table: where content goes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlobConfig {
    /// The S3 endpoint, `https://s3.example.org` (for AWS: `https://s3.<region>.amazonaws.com`).
    pub endpoint: String,
    /// The region the endpoint signs for (Garage: `garage`).
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// `https://endpoint/bucket/key` (true, what MinIO, Garage and Ceph serve by default)
    /// rather than `https://bucket.endpoint/key`.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Bytes per part of a multipart upload, at least 5 MiB; smaller bodies take one PUT.
    #[serde(default = "default_part_size")]
    pub part_size: usize,
    /// Credentials; when absent, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`. The secret
    /// is printed as `(set)`.
    pub access_key_id: Option<String>,
    #[serde(serialize_with = "redacted")]
    pub secret_access_key: Option<String>,
    /// Seconds an object-store request may take before it fails (503 to the client).
    #[serde(default = "default_blob_timeout")]
    pub timeout_secs: u64,
    /// Seconds between two sweeps of unreferenced objects by each instance (older than an
    /// hour); 0 turns the background sweep off (`davit gc` still runs one).
    #[serde(default = "default_sweep")]
    pub sweep_interval_secs: u64,
    /// Keep connections to the object store open between requests (true). Turn it off for a
    /// store whose listener does not set TCP_NODELAY, such as Garage 2.x: on a reused
    /// connection each of its answers then waits some 40 ms for a delayed ACK, while a new
    /// connection on a LAN costs well under a millisecond.
    #[serde(default = "yes")]
    pub reuse_connections: bool,
    /// Sign each request's body (SigV4 hashes every byte with SHA-256) rather than sending it
    /// as `UNSIGNED-PAYLOAD`. Default: signed over plain http, unsigned over https, where TLS
    /// already protects the body and signing it would only cost CPU.
    #[serde(default)]
    pub sign_payload: Option<bool>,
}

fn default_sweep() -> u64 {
    3600
}

fn redacted<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("(set)"),
        None => s.serialize_none(),
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn yes() -> bool {
    true
}
fn default_part_size() -> usize {
    8 << 20
}
fn default_blob_timeout() -> u64 {
    30
}

/// The smallest part S3 accepts (but for the last).
const MIN_PART: usize = 5 << 20;
/// Parts uploaded at once per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// The object store failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No such object.
    #[error("no such object")]
    NotFound,
    /// The settings do not make sense.
    #[error("blobs: {0}")]
    Config(String),
    /// It could not be reached, or did not answer in time.
    #[error("the object store is unavailable: {0}")]
    Unavailable(String),
    /// It answered with a failure.
    #[error("object store: {0}")]
    Failed(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => {
                // Connection failures and time-outs come as generic errors whose chain ends in
                // the HTTP client's error; the words are all that says which.
                let text = format!("{other}");
                let chain = std::iter::successors(
                    Some(&other as &(dyn std::error::Error + 'static)),
                    |e| e.source(),
                )
                .map(|e| e.to_string().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(": ");
                let unreachable = ["connect", "timed out", "timeout", "connection"]
                    .iter()
                    .any(|w| chain.contains(w));
                if unreachable {
                    BlobError::Unavailable(text)
                } else {
                    BlobError::Failed(text)
                }
            }
        }
    }
}

impl From<BlobError> for std::io::Error {
    fn from(e: BlobError) -> Self {
        let kind = match &e {
            BlobError::NotFound => std::io::ErrorKind::NotFound,
            BlobError::Unavailable(_) => std::io::ErrorKind::TimedOut,
            BlobError::Config(_) | BlobError::Failed(_) => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// A bucket of content objects.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<AmazonS3>,
    part_size: usize,
    /// Where multipart uploads in progress are written down, so that the sweep can abort the
    /// ones whose writer died (S3 keeps their parts, invisible to listings, until aborted).
    uploads: Option<Pg>,
}

/// An object's key, size and age, from a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub key: String,
    pub size: u64,
    /// When it was written (to the second).
    pub modified: std::time::SystemTime,
}

impl Blobs {
    /// Connects and checks that the bucket answers (a listing of one key).
    pub async fn connect(config: &BlobConfig) -> Result<Blobs, BlobError> {
        if config.part_size < MIN_PART {
            return Err(BlobError::Config(format!(
                "blobs.part_size: {} is below S3's minimum of {MIN_PART}",
                config.part_size
            )));
        }
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let mut client = ClientOptions::new()
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_timeout(timeout)
            .with_connect_timeout(timeout.min(Duration::from_secs(5)));
        if !config.reuse_connections {
            client = client.with_pool_max_idle_per_host(0);
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_endpoint(&config.endpoint)
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_client_options(client)
            .with_unsigned_payload(
                !config
                    .sign_payload
                    .unwrap_or(!config.endpoint.starts_with("https://")),
            )
            // A request fails within the time-out rather than retrying past it.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: timeout,
                ..RetryConfig::default()
            });
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| BlobError::Config(e.to_string()))?;
        let blobs = Blobs {
            store: Arc::new(store),
            part_size: config.part_size,
            uploads: None,
        };
        let probe = Path::from("davit-probe");
        let _ = blobs
            .store
            .list_with_delimiter(Some(&probe))
            .await
            .map_err(BlobError::from)?;
        Ok(blobs)
    }

    /// Writes every multipart upload down in PostgreSQL (`davit_uploads`) while it is in
    /// progress, for [`Blobs::abort_stale_uploads`].
    pub fn with_upload_log(mut self, pg: Pg) -> Blobs {
        self.uploads = Some(pg);
        self
    }

    /// A writer for a new object at `key`; nothing is visible there until
    /// [`BlobWriter::finish`].
    pub fn writer(&self, key: &str) -> BlobWriter {
        BlobWriter {
            store: self.store.clone(),
            uploads: self.uploads.clone(),
            key: Path::from(key),
            part_size: self.part_size,
            pending: BytesMut::new(),
            multipart: None,
            written: 0,
        }
    }

    /// Aborts the multipart uploads written down more than `min_age` ago that never finished
    /// (their writer's instance died): S3 then drops their parts. Returns how many.
    pub async fn abort_stale_uploads(&self, min_age: Duration) -> Result<u64, BlobError> {
        let Some(pg) = &self.uploads else {
            return Ok(0);
        };
        let unavailable = |e: crate::pg::PgError| BlobError::Unavailable(e.to_string());
        let stale = {
            let conn = pg.conn().await.map_err(unavailable)?;
            conn.client()
                .map_err(unavailable)?
                .query(
                    "SELECT key, upload_id FROM davit_uploads \
                     WHERE started < clock_timestamp() - make_interval(secs => $1)",
                    &[&min_age.as_secs_f64()],
                )
                .await
                .map_err(|e| BlobError::Unavailable(e.to_string()))?
        };
        let mut aborted = 0;
        for row in stale {
            let key: String = row.get(0);
            let id: String = row.get(1);
            match self
                .store
                .abort_multipart(&Path::from(key.as_str()), &id)
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            forget_upload(pg, &key, &id).await?;
            aborted += 1;
        }
        Ok(aborted)
    }

    /// The object at `key` (a byte range of it), as it streams in.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&Path::from(key), options).await?;
        Ok(got
            .into_stream()
            .map(|r| r.map_err(BlobError::from))
            .boxed())
    }

    /// A server-side copy (no bytes pass through davit).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        Ok(self.store.copy(&Path::from(from), &Path::from(to)).await?)
    }

    /// Removes the object (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes many objects (S3 DeleteObjects, up to 1,000 per request); absent ones are
    /// fine. Returns the ones that could not be removed.
    pub async fn delete_many(&self, keys: Vec<String>) -> Vec<(String, BlobError)> {
        let paths = futures_util::stream::iter(keys.into_iter().map(|k| Ok(Path::from(k)))).boxed();
        let results: Vec<_> = self.store.delete_stream(paths).collect().await;
        results
            .into_iter()
            .filter_map(|r| match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => {
                    let key = match &e {
                        object_store::Error::Generic { .. } => String::from("(some object)"),
                        _ => e.to_string(),
                    };
                    Some((key, BlobError::from(e)))
                }
            })
            .collect()
    }

    /// Every object under `prefix`.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobInfo, BlobError>> {
        self.store
            .list(Some(&Path::from(prefix)))
            .map(|r| {
                r.map(|m| BlobInfo {
                    key: m.location.to_string(),
                    size: m.size,
                    modified: std::time::UNIX_EPOCH
                        + Duration::from_secs(
                            u64::try_from(m.last_modified.timestamp()).unwrap_or(0),
                        ),
                })
                .map_err(BlobError::from)
            })
            .boxed()
    }
}

/// A new object being written: the first part is held until it is full, then the upload
/// becomes multipart (written down in the upload log first, when there is one) with at most
/// two parts in flight.
pub struct BlobWriter {
    store: Arc<AmazonS3>,
    uploads: Option<Pg>,
    key: Path,
    part_size: usize,
    pending: BytesMut,
    multipart: Option<Multipart>,
    written: u64,
}

type PartFuture = BoxFuture<'static, (usize, Result<PartId, object_store::Error>)>;

/// A multipart upload in progress.
struct Multipart {
    id: String,
    parts: Vec<Option<PartId>>,
    in_flight: FuturesUnordered<PartFuture>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("key", &self.key)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

async fn forget_upload(pg: &Pg, key: &str, id: &str) -> Result<(), BlobError> {
    let unavailable = |e: crate::pg::PgError| BlobError::Unavailable(e.to_string());
    let conn = pg.conn().await.map_err(unavailable)?;
    conn.client()
        .map_err(unavailable)?
        .execute(
            "DELETE FROM davit_uploads WHERE key = $1 AND upload_id = $2",
            &[&key, &id],
        )
        .await
        .map_err(|e| BlobError::Unavailable(e.to_string()))?;
    Ok(())
}

impl Multipart {
    /// Waits for the oldest part to finish uploading.
    async fn settle_one(&mut self) -> Result<(), BlobError> {
        if let Some((idx, result)) = self.in_flight.next().await {
            let part = result?;
            if let Some(slot) = self.parts.get_mut(idx) {
                *slot = Some(part);
            }
        }
        Ok(())
    }
}

impl BlobWriter {
    /// Appends `data`, waiting while two parts are still uploading.
    pub async fn write(&mut self, mut data: Bytes) -> Result<(), BlobError> {
        self.written += data.len() as u64;
        // Each part fills one buffer of exactly the part size, handed over whole: no buffer
        // grows by doubling, nor stays pinned by a part split off it.
        while !data.is_empty() {
            if self.pending.capacity() == 0 {
                self.pending.reserve(self.part_size);
            }
            let room = self.part_size.saturating_sub(self.pending.len()).max(1);
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data.split_to(take));
            if self.pending.len() >= self.part_size {
                let part = std::mem::take(&mut self.pending).freeze();
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), BlobError> {
        if self.multipart.is_none() {
            let id = self.store.create_multipart(&self.key).await?;
            if let Some(pg) = &self.uploads {
                let recorded = async {
                    let conn = pg.conn().await?;
                    conn.client()?
                        .execute(
                            "INSERT INTO davit_uploads (key, upload_id) VALUES ($1, $2)",
                            &[&self.key.as_ref(), &id],
                        )
                        .await
                        .map_err(crate::pg::PgError::Query)?;
                    Ok::<_, crate::pg::PgError>(())
                }
                .await;
                if let Err(e) = recorded {
                    // Untracked parts could outlive a crash: none are written.
                    let _ = self.store.abort_multipart(&self.key, &id).await;
                    return Err(BlobError::Unavailable(e.to_string()));
                }
            }
            self.multipart = Some(Multipart {
                id,
                parts: Vec::new(),
                in_flight: FuturesUnordered::new(),
            });
        }
        let Some(upload) = self.multipart.as_mut() else {
            return Err(BlobError::Failed("no multipart upload".into()));
        };
        while upload.in_flight.len() >= PARTS_IN_FLIGHT {
            upload.settle_one().await?;
        }
        let idx = upload.parts.len();
        upload.parts.push(None);
        let (store, key, id) = (self.store.clone(), self.key.clone(), upload.id.clone());
        upload.in_flight.push(Box::pin(async move {
            let r = store.put_part(&key, &id, idx, PutPayload::from(part)).await;
            (idx, r)
        }));
        Ok(())
    }

    /// Makes the object visible, whole; returns its size.
    pub async fn finish(mut self) -> Result<u64, BlobError> {
        if self.multipart.is_none() {
            self.store
                .put(&self.key, PutPayload::from(self.pending.split().freeze()))
                .await?;
            return Ok(self.written);
        }
        if !self.pending.is_empty() {
            let last = self.pending.split().freeze();
            self.send_part(last).await?;
        }
        let Some(mut upload) = self.multipart.take() else {
            return Err(BlobError::Failed("no multipart upload".into()));
        };
        while !upload.in_flight.is_empty() {
            upload.settle_one().await?;
        }
        let parts: Option<Vec<PartId>> = upload.parts.into_iter().collect();
        let parts = parts.ok_or_else(|| BlobError::Failed("a part did not upload".into()))?;
        self.store
            .complete_multipart(&self.key, &upload.id, parts)
            .await?;
        if let Some(pg) = &self.uploads {
            // A row left behind only makes the sweep try an abort that finds nothing.
            if let Err(e) = forget_upload(pg, self.key.as_ref(), &upload.id).await {
                tracing::warn!(error = %e, "a finished upload stays in davit_uploads until the sweep");
            }
        }
        Ok(self.written)
    }

    /// Drops what was written (the parts already uploaded are discarded by the store).
    pub async fn abort(mut self) -> Result<(), BlobError> {
        if let Some(upload) = self.multipart.take() {
            drop(upload.in_flight);
            self.store.abort_multipart(&self.key, &upload.id).await?;
            if let Some(pg) = &self.uploads {
                forget_upload(pg, self.key.as_ref(), &upload.id).await?;
            }
        }
        Ok(())
    }
}
