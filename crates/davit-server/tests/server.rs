//! Integration tests: the real server on an ephemeral port, spoken to over HTTP/1.1 (and raw
//! TCP for hostile input). One binary, one module per area.

#[path = "server/common.rs"]
mod common;

#[path = "server/archive.rs"]
mod archive;
#[path = "server/bad_input.rs"]
mod bad_input;
#[path = "server/bind.rs"]
mod bind;
#[path = "server/cache.rs"]
mod cache;
#[path = "server/clients.rs"]
mod clients;
#[path = "server/copymove.rs"]
mod copymove;
#[path = "server/delete.rs"]
mod delete;
#[path = "server/get.rs"]
mod get;
#[path = "server/locks.rs"]
mod locks;
#[path = "server/mkcol.rs"]
mod mkcol;
#[path = "server/options.rs"]
mod options;
#[path = "server/paths.rs"]
mod paths;
#[path = "server/prefer.rs"]
mod prefer;
#[path = "server/principals.rs"]
mod principals;
#[path = "server/propfind.rs"]
mod propfind;
#[path = "server/proppatch.rs"]
mod proppatch;
#[path = "server/put.rs"]
mod put;
#[path = "server/quota.rs"]
mod quota;
#[path = "server/resumable.rs"]
mod resumable;
#[path = "server/search.rs"]
mod search;
#[path = "server/sync.rs"]
mod sync;
#[path = "server/ui.rs"]
mod ui;
