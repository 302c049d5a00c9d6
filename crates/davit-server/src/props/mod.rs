//! Dead properties: stored XML fragments keyed by resource path and property name. Handlers see
//! only the [`PropStore`] trait, so a shared database can replace the embedded one.

mod sqlite;

pub use sqlite::SqlitePropStore;

use davit_proto::href::DavPath;
use davit_proto::xml::QName;
use std::future::Future;

/// A stored dead property: its name and its whole element as a self-contained XML fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    /// Property name.
    pub name: QName,
    /// The property element, namespaces declared inside it.
    pub xml: String,
}

/// One PROPPATCH instruction on dead properties.
#[derive(Debug, Clone)]
pub enum PropOp {
    /// Store (or replace) a property.
    Set(DeadProp),
    /// Remove a property (absent is fine).
    Remove(QName),
}

/// A metadata store (properties, locks, the change log) failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// It answered with a failure: the request answers 500.
    #[error("{0}")]
    Failed(String),
    /// It could not be reached in time (a database gone away): the request answers 503 with
    /// `Retry-After`, and nothing was changed by it.
    #[error("{0}")]
    Unavailable(String),
}

/// How far a tree copy reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeScope {
    /// Only the resource itself.
    Resource,
    /// The resource and everything below it.
    Tree,
}

/// Dead-property storage.
pub trait PropStore: Send + Sync + 'static {
    /// A view of the store inside a transaction, for atomic batches: its changes become
    /// visible (and durable) only at [`commit`](Self::commit).
    type Tx: PropStore + Clone;

    /// False only when no resource can have a dead property, so per-resource clean-ups may be
    /// skipped. The default is the safe answer.
    fn may_hold_any(&self) -> bool {
        true
    }

    /// Answers when the store can serve (for `/readyz`); the default has nothing to ask.
    fn check(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Ok(()))
    }

    /// True when [`begin`](Self::begin) gives a transaction the storage can join
    /// ([`shared`](Self::shared)), so that even a single COPY or MOVE is best run in one.
    fn joins_storage(&self) -> bool {
        false
    }

    /// This transaction, for the storage to join (`Storage::join`) when both live in one
    /// database; `None` (the default) when it cannot be shared.
    fn shared(&self) -> Option<crate::storage::SharedTx> {
        None
    }

    /// Starts a transaction.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx, StoreError>> + Send;
    /// Makes the transaction's changes durable, together with a record that batch `id`
    /// committed (read back by [`was_committed`](Self::was_committed) during recovery).
    fn commit(&self, tx: Self::Tx, id: &str)
        -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Drops the transaction's changes.
    fn rollback(&self, tx: Self::Tx) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// True when batch `id` committed.
    fn was_committed(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Forgets the commit record of batch `id` (its journal is gone).
    fn forget_batch(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The dead properties of each path, in the same order.
    fn get_many(
        &self,
        paths: Vec<DavPath>,
    ) -> impl Future<Output = Result<Vec<Vec<DeadProp>>, StoreError>> + Send;
    /// Applies all instructions in order, atomically.
    fn patch(
        &self,
        path: &DavPath,
        ops: Vec<PropOp>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Copies the properties of `from` (and its tree) onto `to`, replacing what is there.
    fn copy(
        &self,
        from: &DavPath,
        to: &DavPath,
        scope: TreeScope,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Moves the properties of the tree at `from` to `to`.
    fn rename(
        &self,
        from: &DavPath,
        to: &DavPath,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets the properties of the tree at `path`, except for the paths in `keep`.
    fn delete(
        &self,
        path: &DavPath,
        keep: Vec<DavPath>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
