//! The change log behind RFC 6578 sync-collection: which member URLs changed, and when, as a
//! global sequence of numbered changes. Handlers see only the [`ChangeLog`] trait (chosen at
//! start-up, like the property and lock stores), so a shared database can replace the
//! embedded SQLite one.
//!
//! The log learns about changes two ways. Writes made through davit are recorded as they
//! happen ([`ChangeLog::record`]), so a resource created and removed between two syncs is
//! still reported as removed. Changes made by other programs are found by reconciliation: a
//! REPORT first walks its scope and hands every member it finds to the log
//! ([`ChangeLog::observe`]); what differs from the last known state gets a new sequence number,
//! and what was known but not found any more becomes a tombstone ([`ChangeLog::end_walk`]).

mod sqlite;

pub use sqlite::SqliteChangeLog;

use crate::props::StoreError;
use crate::storage::{Kind, Meta};
use davit_proto::href::DavPath;
use davit_proto::xml::SyncLevel;
use futures_util::future::BoxFuture;

/// What a sync covers: a collection and how deep below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The collection (the Request-URI).
    pub root: DavPath,
    /// Its immediate members, or every descendant.
    pub level: SyncLevel,
}

/// A member as found now: its kind and what identifies its content (the ETag of a file;
/// collections have none, so they change only by appearing, disappearing or changing kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its path.
    pub path: DavPath,
    /// File or collection.
    pub kind: Kind,
    /// The state that, when it differs, makes the member changed.
    pub fingerprint: String,
}

impl Observed {
    /// The observation of a resource from its metadata.
    pub fn from_meta(path: DavPath, meta: &Meta) -> Observed {
        Observed {
            path,
            kind: meta.kind,
            fingerprint: if meta.is_dir() {
                String::new()
            } else {
                meta.etag.clone()
            },
        }
    }
}

/// A write through davit, recorded as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noted {
    /// The resource is there now, in this state.
    Present(Observed),
    /// Nothing is mapped at this path (or below it) any more.
    Gone(DavPath),
    /// The resource's dead properties changed (its content may not have).
    Touched(DavPath),
}

/// What became of a member at its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Mapped (new or changed).
    Mapped(Kind),
    /// Unmapped.
    Removed(Kind),
}

/// One change of one member URL, the latest one for that URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// The member.
    pub path: DavPath,
    /// The sequence number of its latest change.
    pub seq: u64,
    /// Its state since.
    pub state: MemberState,
}

/// A reconciliation in progress (see [`ChangeLog::begin_walk`]). Walks of one log are
/// serialised; the walk holds the log's turn until it is ended or dropped.
pub struct Walk {
    /// The scope being walked.
    pub scope: Scope,
    /// The walk's generation: members observed by it carry it.
    pub generation: u64,
    /// Whatever keeps other walks out while this one runs.
    pub hold: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("scope", &self.scope)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Why a client's sync token is not accepted (all answer 403 `DAV:valid-sync-token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of this store (another server, or a state directory made anew).
    Foreign,
    /// Not a token at all, or one this store never issued.
    Malformed,
    /// The history it points into has been pruned.
    Expired,
}

/// A numbered history of member changes. Sequence numbers only grow; a token names one.
/// Implementations must serialise walks (one [`Walk`] at a time) and make each call atomic.
pub trait ChangeLog: Send + Sync + std::fmt::Debug + 'static {
    /// This store's random id, part of every token it issues.
    fn store_id(&self) -> &str;
    /// The sequence number of the latest change.
    fn current(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// The oldest sequence number a token may still name (older history was pruned).
    fn oldest(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Starts reconciling `scope`, waiting for any other walk to end first.
    fn begin_walk(&self, scope: Scope) -> BoxFuture<'_, Result<Walk, StoreError>>;
    /// Members found by the walk, in batches.
    fn observe<'a>(
        &'a self,
        walk: &'a Walk,
        batch: Vec<Observed>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Ends a complete walk: known members of the scope it did not find are removed. (A walk
    /// that could not list everything is dropped instead, and removes nothing.)
    fn end_walk(&self, walk: Walk) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Records writes made through davit. May do nothing while no sync has ever been asked
    /// for (the first walk finds everything anyway). May return before the record is
    /// durable, so a write does not wait for it, but every later call must see the records
    /// made before it, in order.
    fn record(&self, notes: Vec<Noted>) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Up to `max` changes in `scope`, in sequence order, with sequence numbers above
    /// `after`. With `since`, every change after it (removals included, but not the removal of
    /// members of a collection removed after it too); without, the mapped members only (an
    /// initial sync).
    fn changes<'a>(
        &'a self,
        scope: &'a Scope,
        since: Option<u64>,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<LoggedChange>, StoreError>>;
}

const TOKEN_PREFIX: &str = "urn:davit:sync:";

/// The token URI for sequence number `seq` of store `store`.
pub fn format_token(store: &str, seq: u64) -> String {
    format!("{TOKEN_PREFIX}{store}:{seq}")
}

/// True for a URI of the form davit's sync tokens take (whatever store issued it).
pub fn is_sync_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

/// The sequence number a token names, if it is one of `store`'s and still within the
/// history (`oldest ..= current`).
pub fn parse_token(store: &str, token: &str, oldest: u64, current: u64) -> Result<u64, TokenError> {
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenError::Foreign)?;
    let (id, seq) = rest.rsplit_once(':').ok_or(TokenError::Malformed)?;
    if id != store {
        return Err(TokenError::Foreign);
    }
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed);
    }
    let seq: u64 = seq.parse().map_err(|_| TokenError::Malformed)?;
    if seq > current {
        return Err(TokenError::Malformed);
    }
    if seq < oldest {
        return Err(TokenError::Expired);
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_or_stale_ones_are_refused() {
        let t = format_token("abc", 42);
        assert_eq!(parse_token("abc", &t, 0, 42), Ok(42));
        assert_eq!(parse_token("abd", &t, 0, 42), Err(TokenError::Foreign));
        assert_eq!(parse_token("abc", &t, 43, 50), Err(TokenError::Expired));
        assert_eq!(parse_token("abc", &t, 0, 41), Err(TokenError::Malformed));
        assert_eq!(
            parse_token("abc", "http://bogus/1", 0, 9),
            Err(TokenError::Foreign)
        );
        for bad in [
            "urn:davit:sync:abc:",
            "urn:davit:sync:abc:+1",
            "urn:davit:sync:abc",
        ] {
            assert!(parse_token("abc", bad, 0, 9).is_err(), "{bad}");
        }
    }
}
