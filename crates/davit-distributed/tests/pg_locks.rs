//! The PostgreSQL lock store against a real server, as two instances sharing one database.
//! Run by scripts/distributed-test.sh (which starts PostgreSQL); plain `cargo test` skips them.

mod common;

use davit_distributed::PgLockStore;
use davit_proto::href::DavPath;
use davit_proto::xml::LockScope::{self, Exclusive, Shared};
use davit_server::locks::{
    Acquire, Announced, Announcement, Lock, LockDepth, LockStore, Precedence,
};
use std::time::{Duration, SystemTime};
use LockDepth::Infinity;

fn p(s: &str) -> DavPath {
    DavPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn lock(token: &str, root: &str, scope: LockScope, depth: LockDepth, secs: Option<u64>) -> Lock {
    Lock {
        token: token.into(),
        root: p(root),
        scope,
        depth,
        owner: Some("<D:href>mailto:a@example.org</D:href>".into()),
        timeout: secs.map(Duration::from_secs),
        // The store sets the expiry on its own clock.
        expires: None,
        principal: None,
    }
}

fn granted(a: Acquire) -> Lock {
    match a {
        Acquire::Granted(l) => l,
        Acquire::Conflict(c) => panic!("conflict with {c:?}"),
        Acquire::Busy => panic!("busy"),
    }
}

fn conflict(a: Acquire) -> Vec<String> {
    match a {
        Acquire::Granted(l) => panic!("granted {l:?}"),
        Acquire::Conflict(c) => {
            let mut tokens: Vec<String> = c.into_iter().map(|l| l.token).collect();
            tokens.sort();
            tokens
        }
        Acquire::Busy => panic!("busy"),
    }
}

fn tokens(locks: Vec<Lock>) -> Vec<String> {
    let mut t: Vec<String> = locks.into_iter().map(|l| l.token).collect();
    t.sort();
    t
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn conflicts_coverage_and_release_are_shared_by_instances() {
    let url = common::fresh_database().await;
    let a = PgLockStore::new(common::instance(&url).await);
    let b = PgLockStore::new(common::instance(&url).await);
    use LockDepth::*;

    let t1 = granted(
        a.acquire(lock("t1", "/c", Exclusive, Infinity, Some(600)))
            .await
            .unwrap(),
    );
    assert_eq!(t1.timeout, Some(Duration::from_secs(600)));
    let left = t1.seconds_left(SystemTime::now()).unwrap_or(0);
    assert!((598..=600).contains(&left), "{left}");
    // The other instance sees it and is refused below it.
    assert_eq!(
        conflict(
            b.acquire(lock("t2", "/c/x", Shared, Zero, None))
                .await
                .unwrap()
        ),
        ["t1"]
    );
    assert_eq!(tokens(b.covering(&p("/c/x/y")).await.unwrap()), ["t1"]);
    assert!(b.covering(&p("/cx")).await.unwrap().is_empty());
    let got = b
        .get("t1")
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("t1 not seen"));
    assert_eq!(
        (
            got.root.as_str(),
            got.scope,
            got.depth,
            got.owner.as_deref()
        ),
        (
            "/c",
            Exclusive,
            Infinity,
            Some("<D:href>mailto:a@example.org</D:href>")
        )
    );

    // Shared locks coexist; an exclusive one over them conflicts with both.
    granted(
        a.acquire(lock("s1", "/d/f", Shared, Zero, None))
            .await
            .unwrap(),
    );
    granted(
        b.acquire(lock("s2", "/d/f", Shared, Zero, None))
            .await
            .unwrap(),
    );
    assert_eq!(
        conflict(
            a.acquire(lock("e", "/d", Exclusive, Infinity, None))
                .await
                .unwrap()
        ),
        ["s1", "s2"]
    );
    // A depth-0 lock on /d does not reach /d/f.
    granted(
        b.acquire(lock("e0", "/d", Exclusive, Zero, None))
            .await
            .unwrap(),
    );
    assert_eq!(tokens(a.under(&p("/d")).await.unwrap()), ["e0", "s1", "s2"]);
    assert_eq!(tokens(a.covering(&p("/d/f")).await.unwrap()), ["s1", "s2"]);

    // Paths with LIKE's special characters are matched literally.
    granted(
        a.acquire(lock("pct", "/50%_off", Exclusive, Infinity, None))
            .await
            .unwrap(),
    );
    assert!(a.under(&p("/50xyoff")).await.unwrap().is_empty());
    assert!(a.covering(&p("/50xyoff/a")).await.unwrap().is_empty());
    assert_eq!(tokens(a.covering(&p("/50%_off/a")).await.unwrap()), ["pct"]);

    // Refresh on one instance, release on the other.
    let r = b
        .refresh("t1", Some(Duration::from_secs(100)))
        .await
        .unwrap()
        .unwrap();
    assert!((98..=100).contains(&r.seconds_left(SystemTime::now()).unwrap_or(0)));
    assert!(b.release("t1").await.unwrap());
    assert!(!a.release("t1").await.unwrap());
    assert!(a.get("t1").await.unwrap().is_none());
    a.release_tree(&p("/d")).await.unwrap();
    assert!(b.under(&p("/d")).await.unwrap().is_empty());
    assert!(b.refresh("s1", None).await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn locks_lapse_on_time_without_their_instance() {
    let url = common::fresh_database().await;
    let granting = PgLockStore::new(common::instance(&url).await);
    granted(
        granting
            .acquire(lock("short", "/f", Exclusive, LockDepth::Zero, Some(1)))
            .await
            .unwrap(),
    );
    // The instance that granted it is gone.
    drop(granting);
    let other = PgLockStore::new(common::instance(&url).await);
    assert!(other.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(other.get("short").await.unwrap().is_none());
    assert!(other.covering(&p("/f")).await.unwrap().is_empty());
    assert!(!other.release("short").await.unwrap());
    granted(
        other
            .acquire(lock("next", "/f", Exclusive, LockDepth::Zero, None))
            .await
            .unwrap(),
    );
    assert_eq!(
        other.get("next").await.unwrap().map(|l| l.expires),
        Some(None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn of_many_racing_instances_exactly_one_exclusive_lock_wins() {
    let url = common::fresh_database().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(PgLockStore::new(common::instance(&url).await));
    }
    for round in 0..5 {
        let root = format!("/race{round}");
        let mut tasks = Vec::new();
        for i in 0..24 {
            let store = stores[i % stores.len()].clone();
            // Half on the root, half on a member with depth 0: both conflict with the
            // depth-infinity exclusive locks on the root.
            let (path, depth) = if i % 2 == 0 {
                (root.clone(), LockDepth::Infinity)
            } else {
                (format!("{root}/m"), LockDepth::Zero)
            };
            let l = lock(&format!("r{round}-{i}"), &path, Exclusive, depth, Some(60));
            tasks.push(tokio::spawn(async move { store.acquire(l).await }));
        }
        let mut wins = 0;
        for t in tasks {
            match t
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"))
            {
                Acquire::Granted(_) => wins += 1,
                Acquire::Conflict(c) => assert_eq!(c.len(), 1, "{c:?}"),
                Acquire::Busy => panic!("busy with no write announced"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

/// Polls `acquire` until it is no longer `Busy` (an announcement is withdrawn just after its
/// request ends, off the request's path).
async fn once_not_busy(store: &PgLockStore, l: Lock) -> Acquire {
    for _ in 0..500 {
        match store
            .acquire(l.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            Acquire::Busy => tokio::time::sleep(Duration::from_millis(10)).await,
            other => return other,
        }
    }
    panic!("still busy after 5 s");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn a_write_announced_on_one_instance_holds_back_overlapping_grants_on_another() {
    let url = common::fresh_database().await;
    let a = PgLockStore::new(common::instance(&url).await);
    let b = PgLockStore::new(common::instance(&url).await);
    let ok = |r: Result<Acquire, _>| {
        r.unwrap_or_else(|e: davit_server::props::StoreError| panic!("{e}"))
    };
    let busy = |a: Acquire| matches!(a, Acquire::Busy);

    // A writes /w/f (not the tree below it).
    let write = announced(
        a.announce(&[(&p("/w/f"), false)], Precedence::YieldToWaitingLocks)
            .await,
    );
    // Locks that would protect the write wait: on the resource, and depth infinity above it.
    assert!(busy(ok(b
        .acquire(lock("x1", "/w/f", Exclusive, LockDepth::Zero, None))
        .await)));
    assert!(busy(ok(b
        .acquire(lock("x2", "/w", Shared, Infinity, None))
        .await)));
    assert!(busy(ok(b
        .acquire(lock("x3", "/", Exclusive, Infinity, None))
        .await)));
    // Locks it does not reach do not: a sibling, depth 0 above, a name sharing a prefix.
    granted(ok(b
        .acquire(lock("y1", "/w/g", Exclusive, LockDepth::Zero, None))
        .await));
    granted(ok(b
        .acquire(lock("y2", "/w", Exclusive, LockDepth::Zero, None))
        .await));
    granted(ok(b
        .acquire(lock("y3", "/w/ff", Exclusive, Infinity, None))
        .await));
    // The request's own writes never hold back its own LOCK.
    granted(ok(b
        .acquire_beside(
            lock("own", "/w/f", Shared, LockDepth::Zero, None),
            &[write.id],
        )
        .await));
    // Once the write ends, the grant goes through.
    drop(write);
    granted(once_not_busy(&b, lock("x1", "/w/f", Shared, LockDepth::Zero, None)).await);

    // A tree write (DELETE, MOVE's source) reaches locks anywhere below it.
    let tree = announced(
        a.announce(
            &[(&p("/t"), true), (&p("/u/v"), false)],
            Precedence::YieldToWaitingLocks,
        )
        .await,
    );
    assert!(busy(ok(b
        .acquire(lock("t1", "/t/x/y", Exclusive, LockDepth::Zero, None))
        .await)));
    assert!(busy(ok(b
        .acquire(lock("t2", "/u/v", Exclusive, LockDepth::Zero, None))
        .await)));
    granted(ok(b
        .acquire(lock("t3", "/u/v/w", Exclusive, LockDepth::Zero, None))
        .await));
    drop(tree);
    granted(once_not_busy(&b, lock("t1", "/t/x/y", Exclusive, LockDepth::Zero, None)).await);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn the_locks_covering_a_batch_of_paths_come_from_one_query_and_match_one_by_one() {
    let url = common::fresh_database().await;
    let a = PgLockStore::new(common::instance(&url).await);
    granted(
        a.acquire(lock("c", "/c", Shared, Infinity, None))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    granted(
        a.acquire(lock("cx", "/c/x", Shared, LockDepth::Zero, None))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    granted(
        a.acquire(lock("d", "/d", Exclusive, LockDepth::Zero, None))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let paths = [p("/c/x"), p("/c/y"), p("/d/z"), p("/d"), p("/e")];
    let refs: Vec<&DavPath> = paths.iter().collect();
    let many = a
        .covering_many(&refs)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let one_by_one = {
        let mut v = Vec::new();
        for path in &paths {
            v.push(tokens(
                a.covering(path).await.unwrap_or_else(|e| panic!("{e}")),
            ));
        }
        v
    };
    let many: Vec<Vec<String>> = many.into_iter().map(tokens).collect();
    assert_eq!(many, one_by_one);
    assert_eq!(
        many,
        [vec!["c", "cx"], vec!["c"], vec![], vec!["d"], vec![]]
    );
}

/// The announcement a write made (the distributed store announces every write).
fn announced(r: Result<Announced, davit_server::props::StoreError>) -> Announcement {
    match r {
        Ok(Announced::Yes(a)) => a,
        Ok(other) => panic!("expected an announcement, got {other:?}"),
        Err(e) => panic!("{e}"),
    }
}

fn held_back(r: Result<Announced, davit_server::props::StoreError>) -> bool {
    match r {
        Ok(Announced::HeldBack) => true,
        Ok(Announced::Yes(_)) => false,
        Ok(Announced::Nothing) => panic!("the distributed store announces writes"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn a_lock_waiting_on_one_instance_holds_back_new_writes_it_would_protect_on_another() {
    let url = common::fresh_database().await;
    let a = PgLockStore::new(common::instance(&url).await);
    let b = PgLockStore::new(common::instance(&url).await);
    let yield_ = Precedence::YieldToWaitingLocks;
    let hold = b
        .hold_writes(&p("/w"), true, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the distributed store holds writes back"));
    // Writes the lock would protect wait: in the tree, and a tree write above it.
    assert!(held_back(a.announce(&[(&p("/w/f"), false)], yield_).await));
    assert!(held_back(a.announce(&[(&p("/w"), false)], yield_).await));
    assert!(held_back(a.announce(&[(&p("/"), true)], yield_).await));
    // Others do not: a sibling sharing the prefix, a parent written alone.
    drop(announced(a.announce(&[(&p("/ww"), false)], yield_).await));
    drop(announced(a.announce(&[(&p("/"), false)], yield_).await));
    // A request that already holds writes (an atomic batch) goes on.
    drop(announced(
        a.announce(&[(&p("/w/f"), false)], Precedence::Ignore).await,
    ));
    // Once the LOCK stops waiting, writes go on.
    drop(hold);
    let mut went_on = false;
    for _ in 0..200 {
        if !held_back(a.announce(&[(&p("/w/f"), false)], yield_).await) {
            went_on = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        went_on,
        "writes still held back after the LOCK stopped waiting"
    );
    // And a hold lapses by itself after its time (its LOCK's instance may be gone).
    let lapsing = b
        .hold_writes(&p("/z"), false, Duration::from_millis(300))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    std::mem::forget(lapsing);
    assert!(held_back(a.announce(&[(&p("/z"), false)], yield_).await));
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(announced(a.announce(&[(&p("/z"), false)], yield_).await));
}
