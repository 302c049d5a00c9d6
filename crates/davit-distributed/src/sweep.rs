//! Removing content objects no resource points at: what an upload cut short, a crash between
//! an object and its commit, or a failed delete after a commit leaves behind. Run in the
//! background by every instance (`davit serve`) and on demand (`davit gc`); both are safe to
//! run at once, anywhere.

use crate::blobs::Blobs;
use crate::namespace::Namespace;
use futures_util::StreamExt;
use std::io;
use std::time::{Duration, SystemTime};

/// How old an unreferenced object must be before it is removed: an upload writes its object
/// and only then commits the row pointing at it, so a young object may be about to be used.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(3600);

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Objects looked at.
    pub seen: u64,
    /// Objects removed, and their bytes.
    pub removed: u64,
    pub removed_bytes: u64,
    /// Unreferenced objects kept because they are younger than the minimum age.
    pub young: u64,
    /// Multipart uploads older than the minimum age that never finished, aborted (their
    /// parts are dropped by the store).
    pub aborted_uploads: u64,
}

/// Removes every object under `blobs/` that no row points at and that is older than
/// `min_age`, and aborts the multipart uploads of the upload log older than that. The listing
/// is looked up against the namespace 1,000 keys at a time.
pub async fn sweep(ns: &Namespace, blobs: &Blobs, min_age: Duration) -> io::Result<Swept> {
    let mut report = Swept {
        aborted_uploads: blobs
            .abort_stale_uploads(min_age)
            .await
            .map_err(io::Error::from)?,
        ..Swept::default()
    };
    let mut listing = blobs.list("blobs");
    let now = SystemTime::now();
    let mut batch = Vec::with_capacity(1000);
    loop {
        let next = listing.next().await;
        let done = next.is_none();
        if let Some(item) = next {
            batch.push(item.map_err(io::Error::from)?);
        }
        if batch.len() >= 1000 || (done && !batch.is_empty()) {
            let keys: Vec<String> = batch.iter().map(|b| b.key.clone()).collect();
            let used = ns.referenced(&keys).await?;
            for b in batch.drain(..) {
                report.seen += 1;
                if used.contains(&b.key) {
                    continue;
                }
                if now.duration_since(b.modified).unwrap_or_default() < min_age {
                    report.young += 1;
                    continue;
                }
                blobs.delete(&b.key).await.map_err(io::Error::from)?;
                report.removed += 1;
                report.removed_bytes += b.size;
            }
        }
        if done {
            return Ok(report);
        }
    }
}

/// Sweeps every `interval`, for ever (the first after one interval); failures are logged and
/// the next round tries again.
pub async fn sweep_every(ns: Namespace, blobs: Blobs, interval: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep(&ns, &blobs, DEFAULT_MIN_AGE).await {
            Ok(r) if r.removed > 0 || r.aborted_uploads > 0 => tracing::info!(
                removed = r.removed,
                bytes = r.removed_bytes,
                seen = r.seen,
                aborted_uploads = r.aborted_uploads,
                "removed unreferenced objects"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the sweep of unreferenced objects failed"),
        }
    }
}
