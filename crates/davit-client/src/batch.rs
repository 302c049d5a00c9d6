//! The batch endpoint (docs/batch.md): one POST carrying many operations, answered with one
//! 207 whose `response`s — one per operation, in request order — are delivered as they arrive.

use crate::multistatus::{resolve, spawn_reader};
use crate::{Client, Error, Result};
use bytes::Bytes;
use davit_proto::xml::{PropStat, QName, Response};
use futures_util::Stream;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// What one operation of a batch came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpResult {
    /// The operation's position in the batch, from 0 (responses come in request order).
    pub index: usize,
    /// The operation's resolved target.
    pub url: Url,
    /// The decoded path of `url`.
    pub path: String,
    /// The operation's status: what the equivalent single request answered. For PROPFIND and
    /// PROPPATCH operations, which answer with `propstat` groups, it is 200 unless a group
    /// failed (a 404 group only says a property is absent), else the first failure's status
    /// (a 424 only when no group says why).
    pub status: u16,
    /// The `propstat` groups of PROPFIND and PROPPATCH operations (empty for the others).
    pub propstats: Vec<PropStat>,
    /// The `DAV:error` conditions (e.g. `{DAV:}lock-token-submitted`).
    pub error: Vec<QName>,
    /// The `responsedescription`: a reason for a failure.
    pub description: Option<String>,
    /// Where something was created, copied or moved to, resolved against the request URL.
    pub location: Option<Url>,
}

impl OpResult {
    /// True when the operation succeeded (status below 400).
    pub fn is_success(&self) -> bool {
        self.status < 400
    }

    fn from_response(base: &Url, index: usize, r: Response) -> Result<OpResult> {
        let (url, path) = resolve(base, &r.href)?;
        let status = r.status.unwrap_or_else(|| propstat_status(&r.propstats));
        let location = match &r.location {
            Some(l) => Some(resolve(base, l)?.0),
            None => None,
        };
        Ok(OpResult {
            index,
            url,
            path,
            status,
            propstats: r.propstats,
            error: r.error,
            description: r.description,
            location,
        })
    }
}

/// The status of an operation answered in `propstat` form.
fn propstat_status(groups: &[PropStat]) -> u16 {
    let failed = || {
        groups
            .iter()
            .map(|g| g.status)
            .filter(|s| *s >= 400 && *s != 404)
    };
    failed()
        .find(|s| *s != 424)
        .or_else(|| failed().next())
        .unwrap_or(200)
}

/// The results of a batch, one operation at a time as the server writes them.
pub struct BatchStream {
    rx: mpsc::Receiver<Result<OpResult>>,
}

impl BatchStream {
    /// The next operation's result; `None` after the last.
    pub async fn next(&mut self) -> Option<Result<OpResult>> {
        self.rx.recv().await
    }

    /// Collects every result.
    pub async fn collect_all(mut self) -> Result<Vec<OpResult>> {
        let mut out = Vec::new();
        while let Some(r) = self.next().await {
            out.push(r?);
        }
        Ok(out)
    }
}

impl Stream for BatchStream {
    type Item = Result<OpResult>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// POSTs a batch document to `collection`: `content_type` is `application/xml` (the
    /// `urn:davit:batch` form) or `application/json`. The answer is always asked for as XML
    /// and read as it streams in. A batch the server refuses as a whole (malformed, too large,
    /// not a collection) is an [`Error::Status`]; the operations' own failures are results.
    ///
    /// The client's If header ([`with_lock_tokens`](Client::with_lock_tokens),
    /// [`with_if`](Client::with_if)) goes with the POST: it applies to every operation
    /// without an `if` of its own, each against its own target.
    pub async fn batch(
        &self,
        collection: &Url,
        body: impl Into<Bytes>,
        content_type: &str,
    ) -> Result<BatchStream> {
        let rb = self
            .write_request("POST", collection, None)
            .await?
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, "application/xml")
            .body(body.into());
        let response = self.send("POST", collection, rb).await?;
        if response.status() != StatusCode::MULTI_STATUS {
            return Err(Error::Protocol(format!(
                "POST {collection} answered {} instead of 207 (is this a davit server?)",
                response.status().as_u16()
            )));
        }
        let base = response.url().clone();
        Ok(BatchStream {
            rx: spawn_reader(base, response, OpResult::from_response),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(status: u16) -> PropStat {
        PropStat {
            status,
            props: Vec::new(),
            error: Vec::new(),
            description: None,
        }
    }

    #[test]
    fn propstat_statuses() {
        assert_eq!(propstat_status(&[]), 200);
        assert_eq!(propstat_status(&[group(200), group(404)]), 200);
        assert_eq!(propstat_status(&[group(424), group(403)]), 403);
        assert_eq!(propstat_status(&[group(424), group(200)]), 424);
    }
}
