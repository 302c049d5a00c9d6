//! davit's distributed backend (issue 16, in progress): the state that several davit
//! instances must share lives in PostgreSQL, so that any instance may answer any request.
//!
//! Built so far (docs/distributed.md has the status and the design of the rest): the
//! connection pool and schema ([`pg`]); the lock store ([`PgLockStore`]: grants atomic across
//! instances, expiry on PostgreSQL's clock); the object store ([`Blobs`]); the namespace
//! ([`Namespace`]) and the `Storage` over both ([`PgStorage`]); sync-collection's change log
//! ([`PgChangeLog`]).

pub mod blobs;
pub mod changes;
pub mod import;
pub mod locks;
pub mod namespace;
pub mod pg;
pub mod props;
pub mod storage;
pub mod sweep;

pub use blobs::{BlobConfig, BlobError, Blobs};
pub use changes::PgChangeLog;
pub use locks::PgLockStore;
pub use namespace::Namespace;
pub use pg::{Pg, PgConfig, PgError};
pub use props::PgPropStore;
pub use storage::PgStorage;
