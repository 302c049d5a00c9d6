//! Sans-I/O WebDAV protocol for davit: the DAV XML model with its parsers and streaming
//! writer, the header grammars, conditional-request and range logic, status lines, href
//! encoding, and the HTTP/1.1 stream scan that refuses a `#` in a request-target.
//!
//! What this crate leaves out: sockets, files, clocks and async runtimes. Server and client
//! both build on it, so what one writes the other reads with the same types.

pub mod batch;
pub mod conditional;
pub mod date;
pub mod fragment;
pub mod headers;
pub mod href;
pub mod range;
pub mod status;
pub mod xml;
