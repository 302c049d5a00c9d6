//! davit's distributed backend (issue 16, in progress): the state that several davit
//! instances must share lives in PostgreSQL, so that any instance may answer any request.
//!
//! Built so far: the connection pool and schema ([`pg`]) and the lock store ([`PgLockStore`]):
//! grants are atomic across instances and expire on PostgreSQL's clock, so a lock lapses on
//! time even when the instance that granted it is gone.

pub mod blobs;
pub mod locks;
pub mod namespace;
pub mod pg;

pub use blobs::{BlobConfig, BlobError, Blobs};
pub use locks::PgLockStore;
pub use namespace::Namespace;
pub use pg::{Pg, PgConfig, PgError};
