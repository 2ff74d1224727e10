//! One timer for every asset's ticks: the due times of all assets in one heap, served by one
//! task, instead of one sleeping task per asset spawned afresh for every probe (a task, its
//! timer entry and its join handle per asset and per tick).
//!
//! A tick is only a wake-up: the asset actor checks its generation and ignores a tick from a
//! schedule it replaced, so an entry is never taken out of the heap, only left to fire
//! unheeded. An entry holds the actor weakly (see [`TickTarget`]): a stopped actor's entries
//! keep nothing of it alive until they come due.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use ractor::ActorRef;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::asset::AssetMsg;

/// What a tick goes to: held by the asset actor's state, so it goes when the actor does.
pub type TickTarget = Arc<ActorRef<AssetMsg>>;

#[derive(Default)]
pub struct Ticks {
    due: Arc<Mutex<BinaryHeap<Reverse<Entry>>>>,
    /// Wakes the task when a tick comes due before every tick it waits for, or when the
    /// `Ticks` is dropped.
    sooner: Arc<Notify>,
    /// The task is spawned at the first tick asked for, inside the runtime the actors run on.
    started: OnceLock<()>,
}

struct Entry {
    at: Instant,
    target: Weak<ActorRef<AssetMsg>>,
    generation: u64,
}

// Ordered by due time only: the heap needs no tie-break.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

impl Ticks {
    /// Sends `Tick { generation }` to the actor of `target` at `at` (at once if it has passed).
    pub fn schedule(&self, at: Instant, target: &TickTarget, generation: u64) {
        self.started.get_or_init(|| {
            tokio::spawn(serve(Arc::downgrade(&self.due), Arc::clone(&self.sooner)));
        });
        let entry = Entry { at, target: Arc::downgrade(target), generation };
        let sooner = {
            let mut due = self.due.lock();
            let sooner = due.peek().is_none_or(|Reverse(first)| at < first.at);
            due.push(Reverse(entry));
            sooner
        };
        if sooner {
            self.sooner.notify_one();
        }
    }
}

impl Drop for Ticks {
    fn drop(&mut self) {
        // The task ends when it finds the heap gone.
        self.sooner.notify_one();
    }
}

/// The timer wakes on a grid of this step, counted from its start, and sends every tick that
/// came due since its last wake-up: a tick is late by less than one step, and always by the
/// same amount for an asset whose interval is a whole number of steps, so the gap between its
/// probes stays exact. Waking once per due time instead (1,000 assets at 1 s: a thousand times
/// a second, a worker thread parked and woken each time) cost CPU per probe that the load
/// tool measured (README, Benchmarks); the grid batches those wake-ups.
pub(crate) const STEP: Duration = Duration::from_millis(10);

/// `at`, moved up to the next point of the grid that starts at `epoch`.
fn on_grid(epoch: Instant, at: Instant) -> Instant {
    let step = STEP.as_nanos();
    let since = at.saturating_duration_since(epoch).as_nanos().div_ceil(step) * step;
    // u64 nanoseconds reach 584 years past the timer's start; beyond, the due time as it is.
    u64::try_from(since).map_or(at, |since| epoch + Duration::from_nanos(since))
}

/// Fires what is due, then sleeps until the grid point of the next due time, or until a
/// sooner one is asked for.
async fn serve(due: Weak<Mutex<BinaryHeap<Reverse<Entry>>>>, sooner: Arc<Notify>) {
    let epoch = Instant::now();
    let mut fired = Vec::new();
    loop {
        let next = {
            let Some(due) = due.upgrade() else { return };
            let now = Instant::now();
            let mut due = due.lock();
            // By grid point, not due time: the timer wakes a little after the grid point, and a
            // tick due in that little while belongs to the next point, every time.
            while due.peek().is_some_and(|Reverse(first)| on_grid(epoch, first.at) <= now) {
                if let Some(Reverse(entry)) = due.pop() {
                    fired.push(entry);
                }
            }
            due.peek().map(|Reverse(first)| on_grid(epoch, first.at))
        };
        // Sent outside the lock: each send may wake an actor's task.
        for entry in fired.drain(..) {
            if let Some(target) = entry.target.upgrade() {
                // A stopped actor has nobody to tell.
                let _ = target.cast(AssetMsg::Tick { generation: entry.generation });
            }
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = sooner.notified() => {}
                }
            }
            None => sooner.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr};

    use super::*;

    type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

    /// Writes down each tick: its generation and when it came.
    struct Recorder;

    impl Actor for Recorder {
        type Msg = AssetMsg;
        type State = Seen;
        type Arguments = Seen;

        async fn pre_start(&self, _: ActorRef<AssetMsg>, seen: Seen) -> Result<Seen, ActorProcessingErr> {
            Ok(seen)
        }

        async fn handle(
            &self,
            _: ActorRef<AssetMsg>,
            message: AssetMsg,
            seen: &mut Seen,
        ) -> Result<(), ActorProcessingErr> {
            if let AssetMsg::Tick { generation } = message {
                seen.lock().push((generation, Instant::now()));
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_come_at_their_time_in_order_and_none_to_a_target_that_is_gone() {
        let seen = Seen::default();
        let (actor, _) = Actor::spawn(None, Recorder, Arc::clone(&seen)).await.expect("spawned");
        let target: TickTarget = Arc::new(actor.clone());
        let gone: TickTarget = Arc::new(actor);
        let ticks = Ticks::default();
        let start = Instant::now();
        let ms = Duration::from_millis;
        ticks.schedule(start + ms(3000), &target, 3);
        ticks.schedule(start + ms(1000), &target, 1);
        ticks.schedule(start + ms(2000), &gone, 2);
        drop(gone);
        // Asked for while the timer waits for a later tick: it comes all the same, on time.
        tokio::time::sleep_until(start + ms(1500)).await;
        ticks.schedule(start + ms(1600), &target, 16);
        // Already past: at once.
        ticks.schedule(start, &target, 15);
        tokio::time::sleep_until(start + ms(4000)).await;
        let seen = seen.lock().clone();
        let generations: Vec<u64> = seen.iter().map(|(generation, _)| *generation).collect();
        assert_eq!(generations, [1, 15, 16, 3]);
        for ((_, at), due) in seen.iter().zip([1000, 1500, 1600, 3000]) {
            let late = at.duration_since(start + ms(due));
            assert!(late < ms(5), "a tick due at {due} ms came {late:?} late");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_due_within_one_step_go_out_together_at_its_end() {
        let seen = Seen::default();
        let (actor, _) = Actor::spawn(None, Recorder, Arc::clone(&seen)).await.expect("spawned");
        let target: TickTarget = Arc::new(actor);
        let ticks = Ticks::default();
        let start = Instant::now();
        let at = |micros: u64| start + Duration::from_micros(micros);
        // The grid starts with the first tick asked for: 0, 10, 20 ms, … from `start`.
        for (generation, due) in [(1, 1_000_001), (2, 1_004_000), (3, 1_010_000), (4, 1_010_001)] {
            ticks.schedule(at(due), &target, generation);
        }
        tokio::time::sleep_until(at(1_030_000)).await;
        let seen = seen.lock().clone();
        // One wake-up for the first three (the third is on the grid point), the next for the
        // fourth: late by less than a step, never early.
        assert_eq!(seen, [(1, at(1_010_000)), (2, at(1_010_000)), (3, at(1_010_000)), (4, at(1_020_000))]);
    }
}
