//! Writes in progress, so that a LOCK is never granted between a write's lock check and its
//! change.
//!
//! A write checks the locks protecting what it changes (`check_preconditions`), then acts. A
//! LOCK granted in between would protect a resource the write then deletes, moves or
//! overwrites anyway: the lock's holder believes it has the resource to itself, and the lock
//! may vanish with the resource. The stress test `granted_locks_hold_under_contention` saw
//! exactly that. So a write's lock check and its registration here happen under one mutex, and
//! a new lock is granted under the same mutex only when no registered write overlaps it; a
//! LOCK that meets one waits for it to finish. Writes to unrelated paths never wait for each
//! other, and a slow upload delays only a LOCK of what it writes.
//!
//! A LOCK that waits would starve under a steady stream of overlapping writes, each starting
//! before the last ends. So a waiting LOCK is recorded as pending, and a new write it would
//! protect waits behind it (and then meets the lock, like any write that came after it). That
//! precedence is bounded ([`LOCK_PRECEDENCE`]) so a LOCK stuck behind a long upload holds up
//! other writes only briefly; after it, the LOCK waits as before. Writes of a request that
//! already holds tickets (an atomic batch) never wait behind a LOCK, since that LOCK may be
//! waiting for them.

use super::Change;
use crate::cache::{Cache, Noticed};
use crate::locks::{Announced, Announcement, Precedence};
use davit_proto::href::DavPath;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// How long a waiting LOCK holds back new writes it would protect.
pub(crate) const LOCK_PRECEDENCE: Duration = Duration::from_secs(10);

/// Shared by every clone of one `Dav`.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    /// Held while a write checks locks and registers, and while a LOCK checks for overlapping
    /// writes and is granted.
    serial: tokio::sync::Mutex<()>,
    /// Registered writes: ticket id, changed path, whether the whole tree below changes.
    active: Mutex<Vec<(u64, DavPath, bool)>>,
    /// Signalled whenever a write ends.
    finished: tokio::sync::Notify,
    /// LOCKs waiting for writes: id, root, depth infinity, and until when new writes they
    /// would protect wait behind them.
    pending: Mutex<Vec<(u64, DavPath, bool, Instant)>>,
    /// Signalled whenever a LOCK stops waiting (granted, or its request gone).
    lock_settled: tokio::sync::Notify,
    next_id: AtomicU64,
    /// Told of every write when it registers and when it ends.
    cache: Option<Arc<Cache>>,
}

/// A LOCK's place among the pending; dropping it (the LOCK granted, or its request
/// cancelled) lets the writes behind it go.
struct PendingLock<'a> {
    gate: &'a WriteGate,
    id: u64,
}

impl Drop for PendingLock<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.gate.pending.lock() {
            pending.retain(|(id, ..)| *id != self.id);
        }
        self.gate.lock_settled.notify_waiters();
    }
}

tokio::task_local! {
    /// The tickets of the request being handled; they end with it (see `Dav::dispatch_op`).
    static TICKETS: RefCell<Vec<Ticket>>;
}

/// A registered write; dropping it ends the registration (and its announcement to other
/// instances).
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<WriteGate>,
    id: u64,
    announcement: Option<Announcement>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut active) = self.gate.active.lock() {
            if let Some(cache) = &self.gate.cache {
                for (_, path, tree) in active.iter().filter(|(id, ..)| *id == self.id) {
                    cache.invalidate(&noticed(path, *tree));
                }
            }
            active.retain(|(id, _, _)| *id != self.id);
        }
        self.gate.finished.notify_waiters();
    }
}

/// What a write of `path` (`tree`: and everything below) changes, for the cache.
fn noticed(path: &DavPath, tree: bool) -> Noticed {
    if tree {
        Noticed::Tree(path.clone())
    } else {
        Noticed::Path(path.clone())
    }
}

impl WriteGate {
    /// A gate that tells `cache` of every write.
    pub(crate) fn with_cache(cache: Option<Arc<Cache>>) -> WriteGate {
        WriteGate {
            cache,
            ..WriteGate::default()
        }
    }

    /// Runs `check` (the write's lock check) and, when it passes, registers `changes` for as
    /// long as the current request runs, all under the gate's mutex. `announce` tells other
    /// instances of the write before the check (see `LockStore::announce`); the announcement
    /// lasts as long as the registration.
    pub(crate) async fn check_and_register<T, E, F>(
        self: &Arc<Self>,
        changes: &[Change<'_>],
        announce: impl Fn(Precedence) -> F,
        check: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<Announced, E>>,
    {
        if changes.is_empty() {
            return check.await;
        }
        let holds_tickets = TICKETS
            .try_with(|t| !t.borrow().is_empty())
            .unwrap_or(false);
        let precedence = if holds_tickets {
            Precedence::Ignore
        } else {
            Precedence::YieldToWaitingLocks
        };
        // A LOCK waiting on another instance holds this write back: asked again after a
        // pause, without the gate's mutex (that LOCK may be this instance's own).
        let mut pause = Duration::from_millis(2);
        let (_serial, announcement) = loop {
            let serial = self.wait_for_pending_locks(changes, holds_tickets).await;
            match announce(precedence).await? {
                Announced::Yes(a) => break (serial, Some(a)),
                Announced::Nothing => break (serial, None),
                Announced::HeldBack => {
                    drop(serial);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        };
        let passed = check.await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut active) = self.active.lock() {
            for change in changes {
                active.push((id, change.path().clone(), change.is_tree()));
            }
        }
        // Fills begun before this point are not kept; the ticket's end forgets again what
        // was read while the write ran.
        if let Some(cache) = &self.cache {
            for change in changes {
                cache.invalidate(&noticed(change.path(), change.is_tree()));
            }
        }
        let ticket = Ticket {
            gate: self.clone(),
            id,
            announcement,
        };
        // Outside a request scope (never on the server's paths) the ticket ends at once.
        let _ = TICKETS.try_with(|t| t.borrow_mut().push(ticket));
        Ok(passed)
    }

    /// The gate's mutex, once no LOCK waiting in this process would protect `changes` (for at
    /// most [`LOCK_PRECEDENCE`]; at once for a request that already holds tickets).
    async fn wait_for_pending_locks(
        &self,
        changes: &[Change<'_>],
        holds_tickets: bool,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        loop {
            let serial = self.serial.lock().await;
            if holds_tickets {
                return serial;
            }
            // Enabled before looking, so that a LOCK settling right after the look still
            // wakes this write.
            let settled = self.lock_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let now = Instant::now();
            let behind = self.pending.lock().ok().and_then(|pending| {
                pending
                    .iter()
                    .filter(|(_, root, infinite, until)| {
                        *until > now
                            && changes
                                .iter()
                                .any(|c| overlaps(root, *infinite, c.path(), c.is_tree()))
                    })
                    .map(|(.., until)| *until)
                    .min()
            });
            let Some(until) = behind else {
                return serial;
            };
            drop(serial);
            tokio::select! {
                () = settled => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Runs `grant` (the lock acquisition) once no write of another request overlaps a lock on
    /// `root` (`infinite`: of depth infinity), under the gate's mutex.
    pub(crate) async fn grant<T>(
        &self,
        root: &DavPath,
        infinite: bool,
        grant: impl std::future::Future<Output = T>,
    ) -> T {
        let own: Vec<u64> = TICKETS
            .try_with(|t| t.borrow().iter().map(|t| t.id).collect())
            .unwrap_or_default();
        // Held while this LOCK waits; dropped when it returns (or is cancelled).
        let mut place = None;
        loop {
            let serial = self.serial.lock().await;
            // Enabled before looking, so that a write ending right after the look still wakes
            // this LOCK.
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            let blocked = self.active.lock().is_ok_and(|active| {
                active.iter().any(|(id, path, tree)| {
                    !own.contains(id) && overlaps(root, infinite, path, *tree)
                })
            });
            if !blocked {
                let granted = grant.await;
                drop(serial);
                return granted;
            }
            if place.is_none() {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let until = Instant::now() + LOCK_PRECEDENCE;
                if let Ok(mut pending) = self.pending.lock() {
                    pending.push((id, root.clone(), infinite, until));
                }
                place = Some(PendingLock { gate: self, id });
            }
            drop(serial);
            finished.await;
        }
    }

    /// Runs `fut` with its own set of tickets, dropped when it ends; inside another scope it
    /// adds to that one instead. An atomic batch runs its operations inside its own scope, so
    /// what they write stays registered until the batch has committed or rolled back: a LOCK
    /// granted between two of its operations would otherwise protect a change the roll-back
    /// then undoes.
    pub(crate) async fn scope<F: std::future::Future>(fut: F) -> F::Output {
        if TICKETS.try_with(|_| ()).is_ok() {
            fut.await
        } else {
            TICKETS.scope(RefCell::new(Vec::new()), fut).await
        }
    }
}

/// The ids of the current request's announcements to other instances: its own writes never
/// hold back its own LOCK.
pub(crate) fn own_announcements() -> Vec<uuid::Uuid> {
    TICKETS
        .try_with(|t| {
            t.borrow()
                .iter()
                .filter_map(|t| t.announcement.as_ref().map(|a| a.id))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a lock on `root` would protect a write of `path`: the lock check of that write
/// (`Dav::check_locks`) would have found it.
fn overlaps(root: &DavPath, infinite: bool, path: &DavPath, tree: bool) -> bool {
    root == path || (infinite && path.starts_with(root)) || (tree && root.starts_with(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    #[test]
    fn overlap_follows_the_lock_check() {
        // The resource itself, whatever the depth.
        assert!(overlaps(&p("/a/f"), false, &p("/a/f"), false));
        // A depth-infinity lock on an ancestor covers the write; a depth-0 one does not.
        assert!(overlaps(&p("/a"), true, &p("/a/f"), false));
        assert!(!overlaps(&p("/a"), false, &p("/a/f"), false));
        // A tree write reaches locks below it.
        assert!(overlaps(&p("/a/f"), false, &p("/a"), true));
        assert!(!overlaps(&p("/a/f"), false, &p("/a"), false));
        // Siblings never.
        assert!(!overlaps(&p("/a/g"), true, &p("/a/f"), true));
    }

    #[tokio::test]
    async fn lock_waits_for_an_overlapping_write_only() {
        let gate = Arc::new(WriteGate::default());
        let f = p("/a/f");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let writer = {
            let gate = gate.clone();
            let f = f.clone();
            tokio::spawn(WriteGate::scope(async move {
                gate.check_and_register(
                    &[Change::Resource(&f)],
                    |_| async { Ok(Announced::Nothing) },
                    async { Ok::<_, ()>(()) },
                )
                .await
                .unwrap();
                // The write is "in progress" until told to end.
                let _ = rx.await;
            }))
        };
        tokio::task::yield_now().await;
        while gate.active.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // Unrelated: granted at once.
        let other = gate.grant(&p("/a/g"), false, async { 1 }).await;
        assert_eq!(other, 1);
        // Overlapping: waits until the write ends.
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.grant(&f, false, async { 2 }).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        tx.send(()).unwrap();
        writer.await.unwrap();
        assert_eq!(waiting.await.unwrap(), 2);
        assert!(gate.active.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_nested_scope_keeps_its_writes_until_the_outer_one_ends() {
        let gate = Arc::new(WriteGate::default());
        let f = p("/a/f");
        let registered = |gate: &Arc<WriteGate>| gate.active.lock().unwrap().len();
        WriteGate::scope(async {
            // One operation of an atomic batch: its own request scope ends...
            WriteGate::scope(async {
                gate.check_and_register(
                    &[Change::Resource(&f)],
                    |_| async { Ok(Announced::Nothing) },
                    async { Ok::<_, ()>(()) },
                )
                .await
                .unwrap();
            })
            .await;
            // ...but its write stays registered for the rest of the batch.
            assert_eq!(registered(&gate), 1);
            // The batch's own tickets never hold back what it does itself.
            assert_eq!(gate.grant(&f, false, async { 3 }).await, 3);
        })
        .await;
        assert_eq!(registered(&gate), 0);
        // Outside any batch, a request's writes end with the request.
        WriteGate::scope(async {
            gate.check_and_register(
                &[Change::Resource(&f)],
                |_| async { Ok(Announced::Nothing) },
                async { Ok::<_, ()>(()) },
            )
            .await
            .unwrap();
        })
        .await;
        assert_eq!(registered(&gate), 0);
    }

    /// Registers a write of `path` in its own request scope and keeps it in progress until
    /// `end` fires; `log` records when its lock check ran.
    fn hold_write(
        gate: &Arc<WriteGate>,
        path: &str,
        log: Arc<Mutex<Vec<String>>>,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let gate = gate.clone();
        let path = p(path);
        let task = tokio::spawn(WriteGate::scope(async move {
            let name = format!("write {path}");
            gate.check_and_register(
                &[Change::Resource(&path)],
                |_| async { Ok(Announced::Nothing) },
                async {
                    log.lock().unwrap().push(name);
                    Ok::<_, ()>(())
                },
            )
            .await
            .unwrap();
            let _ = rx.await;
        }));
        (task, tx)
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn spawn_lock(
        gate: &Arc<WriteGate>,
        root: &str,
        log: &Arc<Mutex<Vec<String>>>,
    ) -> tokio::task::JoinHandle<()> {
        let gate = gate.clone();
        let root = p(root);
        let log = log.clone();
        tokio::spawn(async move {
            gate.grant(&root, true, async {
                log.lock().unwrap().push("lock".into())
            })
            .await
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_lock_goes_before_new_writes_it_would_protect() {
        let gate = Arc::new(WriteGate::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (first, end_first) = hold_write(&gate, "/a/f", log.clone());
        settle().await;
        let lock = spawn_lock(&gate, "/a", &log);
        settle().await;
        // A new write below the waiting LOCK waits; one elsewhere does not.
        let (second, end_second) = hold_write(&gate, "/a/g", log.clone());
        let (elsewhere, end_elsewhere) = hold_write(&gate, "/b/g", log.clone());
        settle().await;
        assert_eq!(*log.lock().unwrap(), ["write /a/f", "write /b/g"]);
        // Once the write in progress ends, the LOCK goes first, then the new write.
        end_first.send(()).unwrap();
        first.await.unwrap();
        lock.await.unwrap();
        settle().await;
        assert_eq!(
            *log.lock().unwrap(),
            ["write /a/f", "write /b/g", "lock", "write /a/g"]
        );
        for end in [end_second, end_elsewhere] {
            end.send(()).unwrap();
        }
        second.await.unwrap();
        elsewhere.await.unwrap();
        assert!(gate.pending.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_holds_back_new_writes_only_for_a_while() {
        let gate = Arc::new(WriteGate::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (_first, _end_first) = hold_write(&gate, "/a/f", log.clone());
        settle().await;
        let lock = spawn_lock(&gate, "/a", &log);
        settle().await;
        let (_second, _end_second) = hold_write(&gate, "/a/g", log.clone());
        settle().await;
        assert_eq!(log.lock().unwrap().len(), 1);
        // A LOCK stuck behind a long write stops holding the others back.
        tokio::time::sleep(LOCK_PRECEDENCE + Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(*log.lock().unwrap(), ["write /a/f", "write /a/g"]);
        assert!(!lock.is_finished());
        // A LOCK whose request is gone leaves nothing pending.
        lock.abort();
        let _ = lock.await;
        assert!(gate.pending.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_holding_tickets_never_waits_behind_a_lock() {
        let gate = Arc::new(WriteGate::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let batch = {
            let gate = gate.clone();
            tokio::spawn(WriteGate::scope(async move {
                let (f, g) = (p("/a/f"), p("/a/g"));
                gate.check_and_register(
                    &[Change::Resource(&f)],
                    |_| async { Ok(Announced::Nothing) },
                    async { Ok::<_, ()>(()) },
                )
                .await
                .unwrap();
                started_tx.send(()).unwrap();
                go_rx.await.unwrap();
                // The LOCK waits for this batch, so its next write must not wait for the LOCK.
                gate.check_and_register(
                    &[Change::Resource(&g)],
                    |_| async { Ok(Announced::Nothing) },
                    async { Ok::<_, ()>(()) },
                )
                .await
                .unwrap();
            }))
        };
        started_rx.await.unwrap();
        let lock = spawn_lock(&gate, "/a", &log);
        settle().await;
        assert_eq!(gate.pending.lock().unwrap().len(), 1);
        go_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), batch)
            .await
            .expect("the batch went on while the LOCK waited")
            .unwrap();
        lock.await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["lock"]);
    }
}
