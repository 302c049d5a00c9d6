//! The client's sync-collection (RFC 6578) against the real davit server: initial sync,
//! changes through the client and by other programs, removals, continuations, and a refused
//! token.

// Test helpers outside #[test] functions: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::start_davit;
use davit_client::{Client, PropRequest, SyncChange, SyncLevel, Url};
use std::collections::BTreeSet;

fn url(base: &str, path: &str) -> Url {
    Url::parse(&format!("{base}{path}")).unwrap()
}

fn paths(changes: &[SyncChange], removed: bool) -> BTreeSet<String> {
    changes
        .iter()
        .filter(|c| matches!(c, SyncChange::Removed { .. }) == removed)
        .map(|c| c.path().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_collection_follows_changes_and_continuations() {
    let s = start_davit().await;
    let c = Client::builder().build().unwrap();
    let dir = url(&s.url, "/c/");
    c.mkcol(&dir).await.unwrap();
    for name in ["a", "b", "c d"] {
        let u = url(&s.url, &format!("/c/{}", name.replace(' ', "%20")));
        c.put(&u, &b"x"[..], Some(1), None).await.unwrap();
    }
    // Initial sync, in pages of two: three members, with their properties.
    let first = c
        .sync_collection_all(&dir, None, SyncLevel::One, &PropRequest::Common, Some(2))
        .await
        .unwrap();
    assert_eq!(
        paths(&first.changes, false),
        set(&["/c/a", "/c/b", "/c/c d"])
    );
    for change in &first.changes {
        let SyncChange::Changed(r) = change else {
            panic!("{change:?}");
        };
        assert_eq!(r.live.size, Some(1), "{}", r.path);
        assert!(r.live.etag.is_some());
    }

    // One page by hand: truncated, and its token continues.
    let mut page = c
        .sync_collection(&dir, None, SyncLevel::One, &PropRequest::Common, Some(1))
        .await
        .unwrap();
    let mut n = 0;
    while let Some(x) = page.next().await {
        x.unwrap();
        n += 1;
    }
    assert_eq!(n, 1);
    let (_, truncated) = page.finish().await.unwrap();
    assert!(truncated);

    // Changes through the client and directly in the served directory.
    c.put(&url(&s.url, "/c/a"), &b"changed"[..], Some(7), None)
        .await
        .unwrap();
    c.delete(&url(&s.url, "/c/b")).await.unwrap();
    std::fs::write(s.root.join("c/outside"), "by another program").unwrap();
    std::fs::remove_file(s.root.join("c/c d")).unwrap();
    let next = c
        .sync_collection_all(
            &dir,
            Some(&first.token),
            SyncLevel::Infinite,
            &PropRequest::Common,
            None,
        )
        .await
        .unwrap();
    assert_eq!(paths(&next.changes, false), set(&["/c/a", "/c/outside"]));
    assert_eq!(paths(&next.changes, true), set(&["/c/b", "/c/c d"]));
    assert_ne!(next.token, first.token);

    // Nothing since: nothing listed, same token.
    let same = c
        .sync_collection_all(
            &dir,
            Some(&next.token),
            SyncLevel::Infinite,
            &PropRequest::Common,
            None,
        )
        .await
        .unwrap();
    assert!(same.changes.is_empty());
    assert_eq!(same.token, next.token);

    // A token from elsewhere.
    let err = c
        .sync_collection(
            &dir,
            Some("http://example.com/ns/sync/1"),
            SyncLevel::One,
            &PropRequest::Common,
            None,
        )
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(403));
    assert!(err.is_invalid_sync_token(), "{err}");
}
