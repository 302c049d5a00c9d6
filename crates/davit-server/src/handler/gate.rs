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

use super::Change;
use davit_proto::href::DavPath;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    next_id: AtomicU64,
}

tokio::task_local! {
    /// The tickets of the request being handled; they end with it (see `Dav::dispatch_op`).
    static TICKETS: RefCell<Vec<Ticket>>;
}

/// A registered write; dropping it ends the registration.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<WriteGate>,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut active) = self.gate.active.lock() {
            active.retain(|(id, _, _)| *id != self.id);
        }
        self.gate.finished.notify_waiters();
    }
}

impl WriteGate {
    /// Runs `check` (the write's lock check) and, when it passes, registers `changes` for as
    /// long as the current request runs, all under the gate's mutex.
    pub(crate) async fn check_and_register<T, E>(
        self: &Arc<Self>,
        changes: &[Change<'_>],
        check: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if changes.is_empty() {
            return check.await;
        }
        let _serial = self.serial.lock().await;
        let passed = check.await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut active) = self.active.lock() {
            for change in changes {
                let (path, tree) = match change {
                    Change::Resource(p) => ((*p).clone(), false),
                    Change::Tree(p) => ((*p).clone(), true),
                };
                active.push((id, path, tree));
            }
        }
        let ticket = Ticket {
            gate: self.clone(),
            id,
        };
        // Outside a request scope (never on the server's paths) the ticket ends at once.
        let _ = TICKETS.try_with(|t| t.borrow_mut().push(ticket));
        Ok(passed)
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
                gate.check_and_register(&[Change::Resource(&f)], async { Ok::<_, ()>(()) })
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
                gate.check_and_register(&[Change::Resource(&f)], async { Ok::<_, ()>(()) })
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
            gate.check_and_register(&[Change::Resource(&f)], async { Ok::<_, ()>(()) })
                .await
                .unwrap();
        })
        .await;
        assert_eq!(registered(&gate), 0);
    }
}
