//! Busy polling: after a request, a worker keeps polling its event loop for a short window
//! instead of sleeping, so the next request of a connection finds it awake.
//!
//! Why: an idle CPU halts, and on a virtual machine waking a halted CPU for the next request
//! costs an inter-processor interrupt and a VM entry, tens of microseconds that a
//! request-response exchange on one connection pays every time (docs/benchmarks.md, session
//! 15). The window restarts with every request, so a steadily used worker does not sleep and
//! an idle one sleeps one window after its last request: an idle server uses no CPU.
//!
//! Spinning only pays while the worker has a CPU to itself. On a busy machine the spin takes
//! CPU from the programs that would send the next request, so at most once per millisecond
//! the worker counts how often the kernel preempted it for someone else, and stops spinning
//! for a while when that happened more than a few times.

use crate::metrics::METRICS;
use std::cell::Cell;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

thread_local! {
    /// Requests this worker has started and finished: the poller compares it with what it
    /// last saw.
    static EVENTS: Cell<u64> = const { Cell::new(0) };
    /// Requests in progress on this worker. The poller spins only while there are none: a
    /// request waiting for the blocking pool needs that CPU more than the poller does.
    static IN_PROGRESS: Cell<u64> = const { Cell::new(0) };
    /// The sleeping poller's waker, taken when the last request in progress ends.
    static SLEEPING: Cell<Option<Waker>> = const { Cell::new(None) };
    /// Times the poller has polled the event loop (for tests).
    static SPINS: Cell<u64> = const { Cell::new(0) };
}

/// How often the poller asks whether it was preempted.
const CHECK_EVERY: Duration = Duration::from_millis(1);
/// More preemptions than this within `CHECK_EVERY` mean the CPU is contended. One thread
/// serving one connection on an otherwise quiet machine sees well under one per millisecond;
/// two workers sharing two CPUs with sixteen busy connections, about thirteen.
const PREEMPTIONS_TOLERATED: i64 = 3;
/// How long the poller does not spin after the CPU was found contended.
const BACK_OFF: Duration = Duration::from_millis(50);

/// A request in progress on this worker, from its start until its handler has answered.
pub(crate) struct InProgress(());

impl InProgress {
    #[inline]
    pub(crate) fn start() -> InProgress {
        EVENTS.with(|n| n.set(n.get().wrapping_add(1)));
        IN_PROGRESS.with(|n| n.set(n.get() + 1));
        InProgress(())
    }
}

impl Drop for InProgress {
    #[inline]
    fn drop(&mut self) {
        EVENTS.with(|n| n.set(n.get().wrapping_add(1)));
        let left = IN_PROGRESS.with(|n| {
            let left = n.get().saturating_sub(1);
            n.set(left);
            left
        });
        if left == 0 {
            if let Some(waker) = SLEEPING.with(Cell::take) {
                waker.wake();
            }
        }
    }
}

fn events() -> u64 {
    EVENTS.with(Cell::get)
}

fn idle() -> bool {
    IN_PROGRESS.with(Cell::get) == 0
}

/// Whether busy polling can work here: it needs the thread's count of preemptions.
pub(crate) fn supported() -> bool {
    involuntary_switches().is_some()
}

/// The poller of one worker, for the life of the worker's single-threaded runtime. Each
/// `yield_now` lets the runtime ask the operating system for readiness with a zero timeout and
/// run whatever became ready before it comes back here.
pub(crate) async fn run(window: Duration) {
    if let Some(preempted) = Preemption::new(PREEMPTIONS_TOLERATED) {
        poll_for(window, preempted).await;
    }
}

async fn poll_for(window: Duration, mut preempted: Preemption) {
    let mut seen = events();
    loop {
        std::future::poll_fn(|cx| {
            if idle() && events() != seen {
                Poll::Ready(())
            } else {
                SLEEPING.with(|p| p.set(Some(cx.waker().clone())));
                Poll::Pending
            }
        })
        .await;
        seen = events();
        let now = Instant::now();
        if preempted.lately(now) {
            // Sleeping through the back-off costs nothing per request; being woken by each
            // one to find out it must not spin would.
            tokio::time::sleep_until(preempted.spin_from.into()).await;
            continue;
        }
        let began = now;
        let mut until = now + window;
        let ended = loop {
            let now = Instant::now();
            if !idle() || preempted.lately(now) {
                break now;
            }
            let n = events();
            if n != seen {
                seen = n;
                until = now + window;
            } else if now >= until {
                break now;
            }
            SPINS.with(|s| s.set(s.get() + 1));
            tokio::task::yield_now().await;
        };
        METRICS.busy_polled(ended.duration_since(began));
    }
}

/// Whether this thread was preempted often lately, from its count of involuntary context
/// switches.
struct Preemption {
    tolerated: i64,
    checked: Instant,
    count: i64,
    spin_from: Instant,
}

impl Preemption {
    fn new(tolerated: i64) -> Option<Preemption> {
        let now = Instant::now();
        Some(Preemption {
            tolerated,
            checked: now,
            count: involuntary_switches()?,
            spin_from: now,
        })
    }

    fn lately(&mut self, now: Instant) -> bool {
        if now < self.spin_from {
            return true;
        }
        if now.duration_since(self.checked) >= CHECK_EVERY {
            self.checked = now;
            let Some(count) = involuntary_switches() else {
                self.spin_from = now + BACK_OFF;
                return true;
            };
            if count > self.count.saturating_add(self.tolerated) {
                self.spin_from = now + BACK_OFF;
            }
            self.count = count;
        }
        now < self.spin_from
    }
}

#[cfg(target_os = "linux")]
fn involuntary_switches() -> Option<i64> {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD)
        .ok()
        .map(|u| u.involuntary_context_switches())
}

#[cfg(not(target_os = "linux"))]
fn involuntary_switches() -> Option<i64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn spins() -> u64 {
        SPINS.with(Cell::get)
    }

    fn asleep() -> bool {
        SLEEPING.with(|s| {
            let w = s.take();
            let asleep = w.is_some();
            s.set(w);
            asleep
        })
    }

    #[test]
    fn the_poller_sleeps_until_a_request_and_again_after_its_window() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Preemptions tolerated without limit: a loaded test machine must not stop the
            // poller this test watches.
            let preempted = Preemption::new(i64::MAX).unwrap();
            let poller = tokio::spawn(poll_for(Duration::from_millis(2), preempted));
            tokio::task::yield_now().await;
            // No request yet: the poller sleeps without polling.
            assert!(asleep());
            let before = spins();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(spins(), before);

            // A request in progress does not wake it.
            let request = InProgress::start();
            assert!(asleep());
            // Its end does; the poller polls, and sleeps again once its window has passed.
            drop(request);
            assert!(!asleep());
            let polled = METRICS.busy_poll_time();
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(spins() > before);
            assert!(asleep());
            // The metric counts the window it spent polling.
            assert!(METRICS.busy_poll_time() >= polled + Duration::from_millis(2));
            let after = spins();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(spins(), after);
            poller.abort();
        });
    }

    #[test]
    fn a_thread_can_count_its_preemptions() {
        assert!(supported());
    }

    #[test]
    fn preemptions_past_the_tolerance_stop_the_spinning_for_a_while() {
        let mut p = Preemption::new(3).unwrap();
        let start = p.checked;
        // Within a check period nothing is asked.
        p.count = -100;
        assert!(!p.lately(start + Duration::from_micros(500)));
        // At the next check the count has grown by far more than 3: back off.
        assert!(p.lately(start + CHECK_EVERY));
        assert!(p.lately(start + CHECK_EVERY + BACK_OFF - Duration::from_millis(1)));
        // After the back-off, a quiet period lets it spin again (a tolerance no loaded test
        // machine reaches stands in for the quiet).
        p.tolerated = i64::MAX;
        assert!(!p.lately(start + CHECK_EVERY + BACK_OFF));
    }
}
