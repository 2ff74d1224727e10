//! A mailbox that outlives its actor: the one queue behind Persistence's backlog, the Incidents
//! actor's events and each channel's notifications.
//!
//! ractor's mailbox dies with the actor: whatever was queued when an actor panicked is gone.
//! For the actors that must lose nothing, senders put items in an [`Inbox`] and only *wake* the
//! actor; the Supervisor keeps the inbox and hands it to the replacement, which carries on where
//! the old one stopped. This is what an Erlang supervisor does with an ETS table it inherits from
//! a dying child.
//!
//! - **Coalesced wakes.** [`Inbox::wake`] sends the consumer one wake-up however many pushes
//!   came since it last looked ([`Inbox::woken`]): a mass outage pushing 50,000 notifications
//!   costs a handful of actor messages, not 50,000.
//! - **Redelivery of what is in hand.** [`Inbox::take`] moves items out into a [`Lease`]; they
//!   leave for good only when acknowledged ([`Lease::ack`]). A lease dropped unacknowledged (the
//!   consumer panicked, its task was aborted) puts its items back in front, each counted as one
//!   failure, so the next incarnation gets them again and can give up on a poisonous one.
//! - **An explicit bound.** [`Bound`] says what one more item does to a full inbox, and
//!   [`Inbox::dropped`] counts what the bound cost, for the owner to export as a metric.
//! - **A pluggable order.** [`Fifo`] by default; a [`Discipline`] may keep items in another
//!   order (the notifier keeps one line per asset) under the same lock, bound, wake and leases.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Handling attempts before an event is given up as poison (used by the Incidents actor).
pub const MAX_ATTEMPTS: u32 = 3;

/// What pushing one more item into a full inbox does. Items in hand (leased) count towards the
/// bound but are never dropped: a write may be committing them right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// No bound: the owner promises other limits (age, the size of the config).
    Unbounded,
    /// At most this many items; the oldest waiting ones make room for the new one.
    DropOldest(usize),
}

/// An item with how many times it was handed out and not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    pub item: T,
    /// Leases that held the item and were dropped (or partly acknowledged) without it.
    pub failures: u32,
}

/// The order in which an inbox hands its waiting items out. Every method runs under the inbox's
/// lock, so it must be quick: O(1) for everything but the rare [`Discipline::requeue`].
pub trait Discipline<T>: Send {
    /// A new item arrived.
    fn push(&mut self, entry: Entry<T>);
    /// The next item to hand out, if one may go now.
    fn next(&mut self) -> Option<Entry<T>>;
    /// An item handed out came back unacknowledged: it takes its place again. Items of one lease
    /// come back last first, so pushing each in front restores their order.
    fn requeue(&mut self, entry: Entry<T>);
    /// An item handed out was acknowledged.
    fn done(&mut self, _item: &T) {}
    /// The oldest waiting item, to make room under [`Bound::DropOldest`].
    fn pop_oldest(&mut self) -> Option<Entry<T>>;
    /// Items waiting (not in hand).
    fn waiting(&self) -> usize;
}

/// First in, first out.
#[derive(Debug)]
pub struct Fifo<T>(VecDeque<Entry<T>>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Fifo<T> {
    /// The waiting items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|entry| &entry.item)
    }
}

impl<T: Send> Discipline<T> for Fifo<T> {
    fn push(&mut self, entry: Entry<T>) {
        self.0.push_back(entry);
    }
    fn next(&mut self) -> Option<Entry<T>> {
        self.0.pop_front()
    }
    fn requeue(&mut self, entry: Entry<T>) {
        self.0.push_front(entry);
    }
    fn pop_oldest(&mut self) -> Option<Entry<T>> {
        self.0.pop_front()
    }
    fn waiting(&self) -> usize {
        self.0.len()
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Items in the inbox now, waiting and in hand.
    pub len: usize,
    /// Items this push cost: the oldest waiting ones under [`Bound::DropOldest`].
    pub dropped: usize,
}

/// How the consumer is woken: true if the wake-up reached a running consumer.
type Waker = Box<dyn Fn() -> bool + Send + Sync>;

struct State<Q> {
    queue: Q,
    /// Items handed out in leases not yet acknowledged or given back.
    in_hand: usize,
    /// Items ever pushed and accepted.
    accepted: u64,
    /// Items the bound cost (see [`Inbox::dropped`]).
    dropped: u64,
}

/// A bounded, shared queue with one consumer at a time (see the module documentation).
pub struct Inbox<T, Q = Fifo<T>> {
    state: Mutex<State<Q>>,
    bound: Bound,
    /// A wake-up was sent and the consumer has not looked since: further pushes send none.
    wake_pending: AtomicBool,
    waker: RwLock<Option<Waker>>,
    /// Signalled whenever items in hand are acknowledged or given back, for a consumer waiting
    /// for the last ones (a stopping notifier).
    settled: Notify,
    _items: std::marker::PhantomData<fn(T) -> T>,
}

impl<T, Q: Discipline<T> + Default> Inbox<T, Q> {
    /// An empty inbox with no consumer attached yet.
    pub fn new(bound: Bound) -> Self {
        Inbox::with_discipline(bound, Q::default())
    }
}

impl<T, Q: Discipline<T>> Inbox<T, Q> {
    /// An inbox ordered by `queue` (which may already hold items), with no consumer attached.
    pub fn with_discipline(bound: Bound, queue: Q) -> Self {
        Inbox {
            state: Mutex::new(State { queue, in_hand: 0, accepted: 0, dropped: 0 }),
            bound,
            wake_pending: AtomicBool::new(false),
            waker: RwLock::new(None),
            settled: Notify::new(),
            _items: std::marker::PhantomData,
        }
    }

    /// Adds an item, applying the bound; does not wake the consumer (see [`Inbox::wake`]).
    pub fn push(&self, item: T) -> Pushed {
        let mut state = self.state.lock();
        state.queue.push(Entry { item, failures: 0 });
        state.accepted += 1;
        let mut dropped = 0;
        if let Bound::DropOldest(max) = self.bound {
            // Items in hand cannot make room; the newest item always stays.
            let keep = max.max(state.in_hand + 1);
            while state.queue.waiting() + state.in_hand > keep && state.queue.pop_oldest().is_some() {
                dropped += 1;
            }
        }
        state.dropped += dropped as u64;
        Pushed { len: state.queue.waiting() + state.in_hand, dropped }
    }

    /// Hands out up to `max` items, in the discipline's order; they stay counted in the inbox
    /// until the lease is acknowledged or given back. The lease is empty if nothing may go now.
    pub fn take(self: &Arc<Self>, max: usize) -> Lease<T, Q> {
        let mut state = self.state.lock();
        let (mut items, mut failures) = (Vec::new(), Vec::new());
        while items.len() < max {
            let Some(entry) = state.queue.next() else { break };
            items.push(entry.item);
            failures.push(entry.failures);
        }
        state.in_hand += items.len();
        Lease { inbox: Arc::clone(self), items, failures }
    }

    /// Runs `f` on the discipline under the inbox's lock, for the owner's own bookkeeping.
    pub fn with<R>(&self, f: impl FnOnce(&mut Q) -> R) -> R {
        f(&mut self.state.lock().queue)
    }

    /// Items waiting and in hand.
    pub fn len(&self) -> usize {
        let state = self.state.lock();
        state.queue.waiting() + state.in_hand
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items waiting, not in hand.
    pub fn waiting(&self) -> usize {
        self.state.lock().queue.waiting()
    }

    /// Items ever accepted.
    pub fn accepted(&self) -> u64 {
        self.state.lock().accepted
    }

    /// Items the bound cost since the inbox was made: dropped oldest, or refused.
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }

    /// Makes `waker` the consumer (a new incarnation of the actor) and wakes it once, so that it
    /// looks at what waited while no consumer ran. The waker answers whether the wake-up reached
    /// a running consumer.
    pub fn attach(&self, waker: impl Fn() -> bool + Send + Sync + 'static) {
        *self.waker.write() = Some(Box::new(waker));
        // Unconditionally: a push that failed to wake the previous incarnation may still hold
        // the flag.
        self.wake_pending.store(true, Ordering::SeqCst);
        self.call_waker();
    }

    /// Wakes the consumer, unless a wake-up is already on its way: many pushes, one wake-up.
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.call_waker();
        }
    }

    /// The consumer was woken: call before looking at the inbox, so that a push after the look
    /// wakes it again.
    pub fn woken(&self) {
        self.wake_pending.store(false, Ordering::SeqCst);
    }

    fn call_waker(&self) {
        let reached = self.waker.read().as_ref().is_some_and(|waker| waker());
        if !reached {
            // No consumer runs (it is restarting): the next push tries again, and the
            // replacement looks at the inbox when it attaches.
            self.wake_pending.store(false, Ordering::SeqCst);
        }
    }

    /// Completes when items in hand are next acknowledged or given back. Enable it (or poll it
    /// once) before looking at the inbox, so that a settling in between is not missed.
    pub fn settled(&self) -> Notified<'_> {
        self.settled.notified()
    }

    /// Items in hand come back: the first `acked` were handled, the rest take their place again.
    fn settle(&self, items: Vec<T>, failures: Vec<u32>, acked: usize) {
        let mut state = self.state.lock();
        state.in_hand -= items.len();
        let mut items = items;
        let returned = items.split_off(acked.min(items.len()));
        for (item, failures) in returned.into_iter().zip(failures.into_iter().skip(acked)).rev() {
            state.queue.requeue(Entry { item, failures });
        }
        for item in &items {
            state.queue.done(item);
        }
        drop(state);
        self.settled.notify_waiters();
    }
}

/// Items handed out by [`Inbox::take`]. Acknowledge what was handled; whatever is dropped
/// unacknowledged goes back in front of the inbox, each item counted as one failure.
pub struct Lease<T, Q: Discipline<T> = Fifo<T>> {
    inbox: Arc<Inbox<T, Q>>,
    items: Vec<T>,
    /// Per item, how many times it was handed out before and not acknowledged.
    failures: Vec<u32>,
}

impl<T, Q: Discipline<T>> Lease<T, Q> {
    /// The items, in the order they were handed out.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The first item (the only one of a lease taken with `max` 1).
    pub fn first(&self) -> Option<&T> {
        self.items.first()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many times the items were handed out before and not acknowledged (the most of any).
    pub fn failures(&self) -> u32 {
        self.failures.iter().copied().max().unwrap_or(0)
    }

    /// Every item was handled: they leave the inbox.
    pub fn ack(self) {
        self.ack_first(usize::MAX);
    }

    /// The first `n` items were handled and leave; the rest go back in front, in order, each
    /// counted as one failure.
    pub fn ack_first(mut self, n: usize) {
        let (items, mut failures) = self.take_items();
        for failed in failures.iter_mut().skip(n) {
            *failed = failed.saturating_add(1);
        }
        self.inbox.settle(items, failures, n);
    }

    /// Gives every item back, in front and in order, without counting a failure: not handled,
    /// but through no fault of theirs (the channel asked to wait).
    pub fn retry(mut self) {
        let (items, failures) = self.take_items();
        self.inbox.settle(items, failures, 0);
    }

    /// Handling failed: the items go back in front, each counted as one failure (as a drop).
    pub fn fail(self) {}

    fn take_items(&mut self) -> (Vec<T>, Vec<u32>) {
        (std::mem::take(&mut self.items), std::mem::take(&mut self.failures))
    }
}

impl<T, Q: Discipline<T>> Drop for Lease<T, Q> {
    fn drop(&mut self) {
        if self.items.is_empty() {
            return;
        }
        let (items, mut failures) = self.take_items();
        for failed in &mut failures {
            *failed = failed.saturating_add(1);
        }
        self.inbox.settle(items, failures, 0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    fn fifo<T: Send>(bound: Bound) -> Arc<Inbox<T>> {
        Arc::new(Inbox::new(bound))
    }

    fn waiting<T: Clone + Send>(inbox: &Inbox<T>) -> Vec<T> {
        inbox.with(|queue| queue.iter().cloned().collect())
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts_what_it_dropped() {
        let inbox = fifo(Bound::DropOldest(3));
        let pushed: Vec<Pushed> = (0..5).map(|n| inbox.push(n)).collect();
        assert_eq!(pushed[2], Pushed { len: 3, dropped: 0 });
        assert_eq!(pushed[4], Pushed { len: 3, dropped: 1 });
        assert_eq!(waiting(&inbox), [2, 3, 4]);
        assert_eq!((inbox.accepted(), inbox.dropped()), (5, 2));
    }

    #[test]
    fn items_in_hand_are_never_dropped_to_make_room() {
        let inbox = fifo(Bound::DropOldest(3));
        for n in 0..3 {
            inbox.push(n);
        }
        let lease = inbox.take(10);
        inbox.push(3);
        inbox.push(4);
        // The three in hand stay; of the newer ones only the newest.
        assert_eq!(waiting(&inbox), [4]);
        assert_eq!((inbox.len(), inbox.dropped()), (4, 1));
        lease.ack();
        assert_eq!((inbox.len(), waiting(&inbox)), (1, vec![4]));
    }

    #[test]
    fn a_dropped_lease_gives_its_items_back_in_front_in_order_counting_a_failure() {
        let inbox = fifo(Bound::Unbounded);
        for n in 0..4 {
            inbox.push(n);
        }
        let lease = inbox.take(2);
        assert_eq!(lease.items(), [0, 1]);
        assert_eq!(inbox.len(), 4, "items in hand still count");
        drop(lease); // the consumer died before acknowledging
        assert_eq!(waiting(&inbox), [0, 1, 2, 3]);
        let lease = inbox.take(1);
        assert_eq!((lease.first(), lease.failures()), (Some(&0), 1));
        lease.retry(); // not its fault: no failure counted
        let lease = inbox.take(1);
        assert_eq!(lease.failures(), 1);
        lease.ack();
        assert_eq!(waiting(&inbox), [1, 2, 3]);
    }

    #[test]
    fn a_partly_acknowledged_lease_gives_back_the_rest() {
        let inbox = fifo(Bound::Unbounded);
        for n in 0..4 {
            inbox.push(n);
        }
        inbox.take(3).ack_first(1);
        assert_eq!(waiting(&inbox), [1, 2, 3]);
        assert_eq!(inbox.take(1).failures(), 1);
    }

    #[test]
    fn a_lease_dropped_while_unwinding_a_panic_gives_its_item_back() {
        let inbox = fifo(Bound::Unbounded);
        inbox.push("poison");
        for attempt in 0..MAX_ATTEMPTS {
            let handler = Arc::clone(&inbox);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let lease = handler.take(1);
                assert_eq!(lease.failures(), attempt);
                panic!("handling {:?} failed", lease.first());
            }));
            assert!(outcome.is_err());
        }
        let lease = inbox.take(1);
        assert_eq!(lease.failures(), MAX_ATTEMPTS, "the consumer can now give it up as poison");
    }

    /// A consumer that counts its wake-ups, like an actor counting its Wake messages.
    fn counting_waker(inbox: &Inbox<u32>, running: Arc<AtomicBool>) -> Arc<AtomicUsize> {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&wakes);
        inbox.attach(move || {
            let up = running.load(Ordering::SeqCst);
            if up {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            up
        });
        wakes
    }

    #[test]
    fn many_pushes_wake_the_consumer_once_until_it_looks() {
        let inbox = fifo(Bound::Unbounded);
        let wakes = counting_waker(&inbox, Arc::new(AtomicBool::new(true)));
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "attaching wakes the consumer once");
        inbox.woken();
        for n in 0..1000 {
            inbox.push(n);
            inbox.wake();
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        inbox.woken();
        inbox.push(1000);
        inbox.wake();
        assert_eq!(wakes.load(Ordering::SeqCst), 3, "a push after the consumer looked wakes it again");
    }

    #[test]
    fn a_wake_that_reached_no_consumer_is_tried_again_by_the_next_push() {
        let inbox = fifo(Bound::Unbounded);
        let running = Arc::new(AtomicBool::new(false));
        let wakes = counting_waker(&inbox, Arc::clone(&running));
        inbox.push(1);
        inbox.wake();
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "the consumer is restarting");
        running.store(true, Ordering::SeqCst);
        inbox.push(2);
        inbox.wake();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_task_is_woken_once_for_a_burst_and_gets_every_item() {
        let inbox: Arc<Inbox<u32>> = fifo(Bound::Unbounded);
        let notify = Arc::new(Notify::new());
        let signal = Arc::clone(&notify);
        inbox.attach(move || {
            signal.notify_one();
            true
        });
        let consumer = {
            let inbox = Arc::clone(&inbox);
            tokio::spawn(async move {
                let (mut wakes, mut got) = (0, Vec::new());
                while got.len() < 2000 {
                    notify.notified().await;
                    wakes += 1;
                    inbox.woken();
                    loop {
                        let lease = inbox.take(100);
                        if lease.is_empty() {
                            break;
                        }
                        got.extend_from_slice(lease.items());
                        lease.ack();
                    }
                }
                (wakes, got)
            })
        };
        tokio::task::yield_now().await;
        for burst in 0..2 {
            for n in 0..1000 {
                inbox.push(burst * 1000 + n);
                inbox.wake();
            }
            // The consumer handles the burst meanwhile.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (wakes, got) = consumer.await.expect("consumer");
        // Once for attaching, once per burst of a thousand pushes.
        assert_eq!(wakes, 3);
        assert_eq!(got, (0..2000).collect::<Vec<_>>());
    }
}
