//! davit's WebDAV server: the [`Storage`](storage::Storage) and
//! [`PropStore`](props::PropStore) traits with their embedded defaults (local filesystem,
//! SQLite), the method handlers, and the hyper connection loop with graceful shutdown.
//!
//! The protocol itself (XML, headers, hrefs) lives in `davit-proto`; this crate does the I/O.

pub mod admin;
pub mod auth;
pub mod body;
mod busy_poll;
pub mod cache;
pub mod changes;
pub mod config;
pub mod error;
mod fragment_guard;
mod handler;
mod journal;
pub mod live;
pub mod locks;
pub mod logbuf;
pub mod metrics;
pub mod props;
pub mod quota;
mod send_timeout;
pub mod server;
mod sqlite;
pub mod storage;
pub mod tls;
pub mod zip;

pub use config::DavConfig;
pub use handler::{Dav, PeerAddr};
pub use server::{serve, serve_with, serve_worker, Server};
