//! Notifier actor ("notifier:<name>"): delivers notifications to one channel.
//!
//! Its inbox is the channel's [`ChannelQueue`], which the Supervisor keeps: notifications wait
//! there, per asset and in order (a RECOVERY never overtakes its DOWN), and a few assets'
//! deliveries run at once. Deliveries are tasks of their own that finish even if the actor
//! panics meanwhile, so a restart neither loses a pending notification nor sends one twice; a
//! slow or dead channel never blocks the actor, the Incidents actor or the other channels.
//!
//! A rate limit delays an alert, never drops it. When the channel answers 429 (or 503 with a
//! `Retry-After`), or says after a post that its budget is spent (Discord's
//! `X-RateLimit-Remaining: 0`), the whole channel pauses for exactly as long as it asked, the
//! refused notification goes back to its place in the queue (not a failed attempt), and for a
//! while after the channel posts one message at a time, oldest first, so messages keep their
//! order. A notification is dropped only once it has waited [`MAX_AGE`], counted and logged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::RwLock;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use uuid::Uuid;

use super::Services;
use super::inbox::{Bound, Discipline, Entry, Inbox, Lease};
use super::task::{TaskKind, supervised};
use crate::notify::{self, ChannelConfig, DeliveryError, Notification};
use crate::store::{NotificationWrite, OutboxEntry, StoreOp};
use crate::telemetry::names;

/// Deliveries in flight per channel (each for a different asset): enough for a mass outage,
/// few enough not to flood a chat service. Of 10,000 DOWNs to a local webhook, the slowest
/// arrived 16.5 s after its asset's first failed probe with 4 in flight, 3 to 5 s with 8, 16
/// or 64 (`benches/mass_outage.rs`): past 8 a local receiver gains nothing, and 16 leaves room
/// for a receiver farther away, whose every delivery takes a round trip.
const MAX_IN_FLIGHT: usize = 16;
/// After a rate limit, one delivery at a time for this long past the wait: a burst would only
/// be refused again, and one at a time keeps the order of messages.
const CAREFUL_AFTER_RATE_LIMIT: Duration = Duration::from_secs(60);
/// A notification still waiting this long after it was decided is dropped (counted as failed
/// and logged): an alert about an outage an hour old is no longer news.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// How long a notification waits for its outbox row to be stored before it is sent anyway:
/// writes take milliseconds, and a database down for longer must not hold alerts back.
const OUTBOX_WAIT: Duration = Duration::from_secs(5);
/// How long a stopping notifier waits for deliveries still queued or under way.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct Notifier;

pub struct NotifierArgs {
    pub queue: Arc<ChannelQueue>,
    pub services: Arc<Services>,
}

pub enum NotifierMsg {
    /// The queue changed (a notification arrived, a delivery finished, a pause ended): start
    /// what can start. Coalesced by the inbox: one wake-up for many changes.
    Wake,
    Panic(String),
}

/// A channel's pending deliveries; outlives the actor. Its [`Inbox`] keeps them in the order of
/// [`QueueState`], and each delivery under way holds its notification in a lease: a delivery
/// that never reports back gives it back for the next incarnation.
pub struct ChannelQueue {
    name: String,
    /// "notifier:<name>", for logs, metrics and panic reports.
    actor: String,
    channel: RwLock<Arc<ChannelConfig>>,
    /// Unbounded: [`MAX_AGE`] bounds how long a notification waits, and dropping alerts to make
    /// room would lose exactly the ones a mass outage makes important.
    inbox: Arc<Inbox<Pending, QueueState>>,
}

/// A notification in the queue.
#[derive(Debug, Clone)]
struct Pending {
    /// Its row in the outbox (`notifications`), updated when the send ends.
    id: Uuid,
    notification: Notification,
    /// Arrival order in this queue, set when it arrives: a notification sent back after a rate
    /// limit or a panic takes its place again by it.
    seq: u64,
    /// When it was decided, for [`MAX_AGE`].
    decided: Instant,
    /// The sequence number of its outbox row's write ([`Backlog::stored`]); None when the row
    /// is known to be stored (resumed from the outbox) or there is none (a test message).
    ///
    /// [`Backlog::stored`]: super::persistence::Backlog::stored
    outbox_write: Option<u64>,
}

/// The order of a channel's notifications: per asset in order, assets by when they became
/// ready, at most [`MAX_IN_FLIGHT`] under way (one per asset), none while the channel asked for
/// a pause. Every operation is O(1) but sending a notification back, which is rare: a mass
/// outage queues tens of thousands of notifications at once.
#[derive(Default)]
struct QueueState {
    /// Waiting notifications per asset, in order; an asset is here only while it has some.
    waiting: HashMap<String, VecDeque<Entry<Pending>>>,
    /// How many notifications `waiting` holds.
    waiting_count: usize,
    /// Assets with a delivery under way.
    active: HashSet<String>,
    /// Assets with notifications waiting and none under way, in arrival order: exactly the keys
    /// of `waiting` that are not in `active`, so whether an asset is here is known without
    /// searching it.
    ready: VecDeque<String>,
    next_seq: u64,
    /// Nothing starts before this: the channel asked for a pause.
    paused_until: Option<Instant>,
    /// One delivery at a time until this (see [`CAREFUL_AFTER_RATE_LIMIT`]).
    careful_until: Option<Instant>,
    /// The last wait a rate limit asked for: while careful, posts are spaced by it, so a
    /// channel that allows one a second gets one a second instead of a refusal every other.
    pace: Duration,
    /// Notifications dropped for [`MAX_AGE`] on the way, not yet counted and logged.
    expired: Vec<Pending>,
}

/// How a delivery ended, for the queue.
enum Finished {
    /// Sent, or failed for good: the next notification of the asset may go.
    Done,
    /// To be sent again, from its place in the queue.
    /// Boxed: rare (a rate limit, a panic), and `Done` is the common case.
    Again(Box<Entry<Pending>>),
}

impl Discipline<Pending> for QueueState {
    fn push(&mut self, mut entry: Entry<Pending>) {
        self.next_seq += 1;
        entry.item.seq = self.next_seq;
        let asset_id = entry.item.notification.asset_id.clone();
        let queue = self.waiting.entry(asset_id.clone()).or_default();
        let was_waiting = !queue.is_empty();
        queue.push_back(entry);
        self.waiting_count += 1;
        if !was_waiting && !self.active.contains(&asset_id) {
            self.ready.push_back(asset_id);
        }
    }

    fn next(&mut self) -> Option<Entry<Pending>> {
        let mut expired = std::mem::take(&mut self.expired);
        let next = self.start_next(MAX_IN_FLIGHT, Instant::now(), &mut expired);
        self.expired = expired;
        next
    }

    fn requeue(&mut self, entry: Entry<Pending>) {
        let asset_id = entry.item.notification.asset_id.clone();
        self.finished(&asset_id, Finished::Again(Box::new(entry)));
    }

    fn done(&mut self, pending: &Pending) {
        self.finished(&pending.notification.asset_id, Finished::Done);
    }

    /// Only for a bounded queue, which a channel's is not: the first waiting notification of
    /// the asset that has been ready longest.
    fn pop_oldest(&mut self) -> Option<Entry<Pending>> {
        let asset_id = self.ready.front()?.clone();
        let queue = self.waiting.get_mut(&asset_id)?;
        let oldest = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&asset_id);
            self.ready.pop_front();
        }
        self.waiting_count -= 1;
        Some(oldest)
    }

    fn waiting(&self) -> usize {
        self.waiting_count
    }
}

impl QueueState {
    /// The next delivery to start, unless the channel is paused or enough are under way: the
    /// first notification of the asset that has been ready longest. Its asset is active until
    /// [`QueueState::finished`], so its next notification waits for this one. Notifications
    /// older than [`MAX_AGE`] are dropped on the way and returned in `expired`.
    fn start_next(&mut self, max_in_flight: usize, now: Instant, expired: &mut Vec<Pending>) -> Option<Entry<Pending>> {
        if self.paused_until.is_some_and(|until| now < until) {
            return None;
        }
        let max_in_flight = if self.careful_until.is_some_and(|until| now < until) { 1 } else { max_in_flight };
        while self.active.len() < max_in_flight {
            let asset_id = self.ready.pop_front()?;
            let Some(queue) = self.waiting.get_mut(&asset_id) else { continue };
            // Never empty, by the invariant above; skipped if it were.
            let Some(entry) = queue.pop_front() else { continue };
            let left = !queue.is_empty();
            if !left {
                self.waiting.remove(&asset_id);
            }
            self.waiting_count -= 1;
            if now.saturating_duration_since(entry.item.decided) > MAX_AGE {
                expired.push(entry.item);
                if left {
                    self.ready.push_front(asset_id);
                }
                continue;
            }
            self.active.insert(asset_id);
            return Some(entry);
        }
        None
    }

    fn finished(&mut self, asset_id: &str, outcome: Finished) {
        let was_active = self.active.remove(asset_id);
        match outcome {
            Finished::Done => {
                if was_active && self.waiting.contains_key(asset_id) {
                    self.ready.push_back(asset_id.to_string());
                }
            }
            Finished::Again(entry) => {
                // Back in front of its asset's queue, and the asset back at its place among the
                // ready ones, by the arrival order of what each has first (unless it is there
                // already: not under way, with notifications waiting).
                let seq = entry.item.seq;
                let queue = self.waiting.entry(asset_id.to_string()).or_default();
                let was_waiting = !queue.is_empty();
                queue.push_front(*entry);
                self.waiting_count += 1;
                if was_active || !was_waiting {
                    let head =
                        |id: &String| self.waiting.get(id).and_then(VecDeque::front).map_or(u64::MAX, |e| e.item.seq);
                    let place = self.ready.iter().position(|id| head(id) > seq).unwrap_or(self.ready.len());
                    self.ready.insert(place, asset_id.to_string());
                }
            }
        }
    }

    /// The channel asked for a pause of `wait` (`rate_limited`: it refused a post); returns when
    /// the pause ends.
    fn pause(&mut self, wait: Duration, rate_limited: bool, now: Instant) -> Instant {
        let until = self.paused_until.filter(|until| *until > now).map_or(now + wait, |until| until.max(now + wait));
        self.paused_until = Some(until);
        if rate_limited {
            self.careful_until = Some(until + CAREFUL_AFTER_RATE_LIMIT);
            self.pace = wait;
        }
        until
    }

    /// A post went through: while careful, the next waits one pace; returns until when.
    fn paced(&mut self, now: Instant) -> Option<Instant> {
        let careful = self.careful_until.is_some_and(|until| now < until);
        (careful && !self.pace.is_zero()).then(|| self.pause(self.pace, false, now))
    }
}

impl ChannelQueue {
    pub fn new(name: &str, channel: ChannelConfig) -> Arc<ChannelQueue> {
        Arc::new(ChannelQueue {
            name: name.to_string(),
            actor: format!("notifier:{name}"),
            channel: RwLock::new(Arc::new(channel)),
            inbox: Arc::new(Inbox::new(Bound::Unbounded)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues a notification (its outbox row is `id`) and wakes the notifier.
    pub fn push(&self, id: Uuid, notification: Notification, outbox_write: u64) {
        // The seq is set by the queue, under its lock, so that it follows arrival.
        self.inbox.push(Pending {
            id,
            notification,
            seq: 0,
            decided: Instant::now(),
            outbox_write: Some(outbox_write),
        });
        self.inbox.wake();
    }

    /// Queues a notification the outbox kept pending across a restart, decided `age` ago (so
    /// that [`MAX_AGE`] counts from its decision, not from the restart).
    pub fn resume(&self, entry: OutboxEntry, age: Duration) {
        let decided = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        self.inbox.push(Pending {
            id: entry.id,
            notification: entry.notification,
            seq: 0,
            decided,
            outbox_write: None,
        });
        self.inbox.wake();
    }

    /// Notifications waiting or being delivered.
    pub fn len(&self) -> usize {
        self.inbox.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel's config as in force now.
    pub fn config(&self) -> Arc<ChannelConfig> {
        Arc::clone(&self.channel.read())
    }

    /// Whether storms reach this channel as one grouped message ([`ChannelConfig::groups`]).
    pub fn groups(&self) -> bool {
        self.channel.read().groups()
    }

    /// A changed channel (new URL, timeout) applies to the deliveries that start from now on.
    pub fn update(&self, channel: ChannelConfig) {
        *self.channel.write() = Arc::new(channel);
    }

    /// Starts deliveries while slots are free and the channel is not paused.
    fn pump(self: &Arc<Self>, services: &Arc<Services>) {
        loop {
            let lease = self.inbox.take(1);
            if lease.is_empty() {
                break;
            }
            let queue = Arc::clone(self);
            let services = Arc::clone(services);
            // Not owned by the actor: it finishes even if the actor dies meanwhile.
            tokio::spawn(async move {
                queue.deliver(&services, lease).await;
                queue.inbox.wake();
            });
        }
        let expired = self.inbox.with(|state| std::mem::take(&mut state.expired));
        for Pending { id, notification, .. } in expired {
            services.directory.persist_change(StoreOp::Notification(NotificationWrite::Failed {
                id,
                at: Utc::now(),
                attempts: 0,
                error: format!("waited more than {}s to be sent", MAX_AGE.as_secs()),
            }));
            let event = notification.event.as_str();
            count(&self.name, event, "failed");
            tracing::error!(
                actor = %self.actor, channel = %self.name, asset_id = %notification.asset_id, event,
                waited_s = MAX_AGE.as_secs(), "notification dropped: it waited too long to be sent"
            );
        }
    }

    /// Delivers the lease's notification (in a task of its own), then acknowledges it or gives
    /// it back to its place in the queue.
    async fn deliver(self: &Arc<Self>, services: &Arc<Services>, lease: Lease<Pending, QueueState>) {
        let Some(pending) = lease.first() else { return };
        // Sent only once its outbox row is stored: a replica taking the asset over, or statusd
        // restarted, then finds the incident and the decision and sends nothing again. A
        // database that cannot take the row within OUTBOX_WAIT does not hold alerts back.
        if let Some(seq) = pending.outbox_write
            && !services.directory.backlog().stored(seq, OUTBOX_WAIT).await
        {
            tracing::warn!(
                actor = %self.actor, channel = %self.name, asset_id = %pending.notification.asset_id,
                event = pending.notification.event.as_str(),
                "the outbox row is not stored yet: sent anyway (a restart now may send it again)"
            );
        }
        let channel = Arc::clone(&self.channel.read());
        let notification = &pending.notification;
        let event = notification.event.as_str();
        let asset_id = notification.asset_id.as_str();
        let asset = services.template_assets.read().get(asset_id).cloned();
        let message = notify::message_for(&self.name, &channel, notification, asset.as_deref());
        let attempts = channel.max_attempts();
        let delivery = notify::deliver(&services.notify_client, &channel, &message, attempts);
        let outcome = match supervised(services, &self.actor, TaskKind::Delivery, delivery).await {
            Ok(outcome) => outcome,
            // A panicking delivery is sent again like a failed one, up to the same attempts.
            Err(panic) => {
                let panics = lease.failures() + 1;
                if panics < attempts {
                    lease.fail();
                    return;
                }
                Err(DeliveryError::GaveUp { attempts: panics, last: panic.to_string() })
            }
        };
        let record = |write| services.directory.persist_change(StoreOp::Notification(write));
        let again = match outcome {
            Ok(sent) => {
                record(NotificationWrite::Sent { id: pending.id, at: Utc::now(), attempts: sent.attempts });
                count(&self.name, event, "sent");
                tracing::info!(
                    actor = %self.actor, channel = %self.name, asset_id, event, attempts = sent.attempts,
                    "notification sent"
                );
                match sent.pause {
                    Some(wait) => self.pause_for(wait, false),
                    None => {
                        if let Some(until) = self.inbox.with(|state| state.paced(Instant::now())) {
                            self.wake_at(until);
                        }
                    }
                }
                false
            }
            Err(DeliveryError::RateLimited { status, wait }) => {
                metrics::counter!(names::NOTIFICATIONS_RATE_LIMITED_TOTAL, "channel" => self.name.clone()).increment(1);
                tracing::warn!(
                    actor = %self.actor, channel = %self.name, asset_id, event, status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64, "rate limited: the channel pauses as asked, the notification waits"
                );
                self.pause_for(wait, true);
                true
            }
            Err(error) => {
                let attempts = match &error {
                    DeliveryError::GaveUp { attempts, .. } => *attempts,
                    _ => lease.failures() + 1,
                };
                record(NotificationWrite::Failed {
                    id: pending.id,
                    at: Utc::now(),
                    attempts,
                    error: error.to_string(),
                });
                count(&self.name, event, "failed");
                tracing::error!(
                    actor = %self.actor, channel = %self.name, asset_id, event, %error, "notification failed"
                );
                false
            }
        };
        if again {
            // Refused, not failed: it goes back to its place without counting an attempt.
            lease.retry();
        } else {
            lease.ack();
        }
    }

    /// Pauses the channel, and wakes the notifier when the pause is over.
    fn pause_for(&self, wait: Duration, rate_limited: bool) {
        let until = self.inbox.with(|state| state.pause(wait, rate_limited, Instant::now()));
        self.wake_at(until);
    }

    fn wake_at(&self, until: Instant) {
        let inbox = Arc::clone(&self.inbox);
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            inbox.wake();
        });
    }
}

fn count(channel: &str, event: &'static str, result: &'static str) {
    metrics::counter!(names::NOTIFICATIONS_TOTAL, "channel" => channel.to_string(), "event" => event, "result" => result)
        .increment(1);
}

pub struct NotifierState {
    queue: Arc<ChannelQueue>,
    services: Arc<Services>,
}

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NotifierMsg>,
        args: NotifierArgs,
    ) -> Result<NotifierState, ActorProcessingErr> {
        // Wakes this incarnation at once: what waited while no actor ran starts right away.
        args.queue.inbox.attach(move || myself.cast(NotifierMsg::Wake).is_ok());
        Ok(NotifierState { queue: args.queue, services: args.services })
    }

    async fn handle(
        &self,
        _myself: ActorRef<NotifierMsg>,
        message: NotifierMsg,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NotifierMsg::Wake => {
                state.queue.inbox.woken();
                state.queue.pump(&state.services);
            }
            NotifierMsg::Panic(reason) => panic!("{reason}"),
        }
        Ok(())
    }

    /// On shutdown: let what is queued and under way go out, within a grace period, so the last
    /// DOWN or RECOVERY is not lost to a restart of the process.
    async fn post_stop(
        &self,
        _myself: ActorRef<NotifierMsg>,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        loop {
            // Registered before looking, so that a delivery finishing in between still wakes us.
            let finished = state.queue.inbox.settled();
            tokio::pin!(finished);
            finished.as_mut().enable();
            state.queue.pump(&state.services);
            if state.queue.is_empty() || tokio::time::timeout_at(deadline, finished).await.is_err() {
                break;
            }
        }
        if !state.queue.is_empty() {
            tracing::warn!(actor = %format!("notifier:{}", state.queue.name), pending = state.queue.len(), "stopped with deliveries pending");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Event;

    fn note(asset: &str, event: Event) -> Notification {
        Notification {
            event,
            asset_id: asset.into(),
            asset_name: asset.into(),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            details: String::new(),
            incident_id: None,
            group: Vec::new(),
            tier: None,
            since: None,
        }
    }

    impl QueueState {
        /// A notification decided at `now` arrives.
        fn arrive(&mut self, notification: Notification, now: Instant) {
            let pending = Pending { id: Uuid::now_v7(), notification, seq: 0, decided: now, outbox_write: None };
            Discipline::push(self, Entry { item: pending, failures: 0 });
        }
    }

    fn start(state: &mut QueueState, max: usize, now: Instant) -> Vec<Entry<Pending>> {
        let mut expired = Vec::new();
        let started = std::iter::from_fn(|| state.start_next(max, now, &mut expired)).collect();
        assert!(expired.is_empty());
        started
    }

    fn started(state: &mut QueueState, max: usize) -> Vec<(String, Event)> {
        let names = |e: Entry<Pending>| (e.item.notification.asset_id, e.item.notification.event);
        start(state, max, Instant::now()).into_iter().map(names).collect()
    }

    #[test]
    fn an_asset_has_one_delivery_under_way_and_its_next_waits_in_order() {
        let now = Instant::now();
        let mut state = QueueState::default();
        state.arrive(note("a", Event::Down), now);
        state.arrive(note("a", Event::Recovery), now);
        state.arrive(note("b", Event::Down), now);
        // Slots to spare, yet a's RECOVERY does not start beside its DOWN.
        assert_eq!(started(&mut state, 8), [("a".into(), Event::Down), ("b".into(), Event::Down)]);
        state.arrive(note("a", Event::Down), now);
        assert_eq!(started(&mut state, 8), []);
        state.finished("a", Finished::Done);
        assert_eq!(started(&mut state, 8), [("a".into(), Event::Recovery)]);
        state.finished("b", Finished::Done);
        state.finished("a", Finished::Done);
        assert_eq!(started(&mut state, 8), [("a".into(), Event::Down)]);
        state.finished("a", Finished::Done);
        assert_eq!((state.waiting_count, state.active.len(), state.ready.len()), (0, 0, 0));
    }

    #[test]
    fn assets_start_in_the_order_they_became_ready_within_the_slots() {
        let now = Instant::now();
        let mut state = QueueState::default();
        for asset in ["c", "a", "b", "d"] {
            state.arrive(note(asset, Event::Down), now);
            state.arrive(note(asset, Event::Recovery), now);
        }
        assert_eq!(started(&mut state, 2), [("c".into(), Event::Down), ("a".into(), Event::Down)]);
        state.finished("a", Finished::Done);
        state.finished("c", Finished::Done);
        // b and d were ready before a and c came back.
        assert_eq!(started(&mut state, 2), [("b".into(), Event::Down), ("d".into(), Event::Down)]);
        assert_eq!(state.ready, ["a", "c"]);
        assert_eq!(state.waiting_count + state.active.len(), 6);
    }

    #[test]
    fn notifications_sent_back_take_their_place_again_by_arrival() {
        let now = Instant::now();
        let mut state = QueueState::default();
        for asset in ["a", "b", "c", "d"] {
            state.arrive(note(asset, Event::Down), now);
        }
        let mut under_way = start(&mut state, 3, now);
        assert_eq!(state.ready, ["d"]);
        // c and a are refused (rate limited), b goes through: a and c go back before d.
        let (c, a) = (under_way.remove(2), under_way.remove(0));
        state.finished("c", Finished::Again(Box::new(c)));
        state.finished("b", Finished::Done);
        state.finished("a", Finished::Again(Box::new(a)));
        assert_eq!(state.ready, ["a", "c", "d"]);
        assert_eq!(
            started(&mut state, 8),
            [("a".into(), Event::Down), ("c".into(), Event::Down), ("d".into(), Event::Down)]
        );
    }

    #[test]
    fn a_paused_channel_starts_nothing_until_the_pause_ends_then_one_at_a_time() {
        let now = Instant::now();
        let mut state = QueueState::default();
        for asset in ["a", "b", "c"] {
            state.arrive(note(asset, Event::Down), now);
        }
        let until = state.pause(Duration::from_secs(42), true, now);
        assert_eq!(until, now + Duration::from_secs(42));
        assert!(start(&mut state, 8, now + Duration::from_secs(41)).is_empty());
        // A shorter wait asked meanwhile never ends the pause earlier.
        assert_eq!(state.pause(Duration::from_secs(1), true, now + Duration::from_secs(2)), until);
        let after = now + Duration::from_secs(42);
        assert_eq!(start(&mut state, 8, after).len(), 1, "one at a time after a rate limit");
        state.finished("a", Finished::Done);
        // While careful, posts are spaced by the last wait the channel asked for.
        assert_eq!(state.paced(after), Some(after + Duration::from_secs(1)));
        let later = after + CAREFUL_AFTER_RATE_LIMIT + Duration::from_secs(1);
        assert_eq!(state.paced(later), None);
        assert_eq!(start(&mut state, 8, later).len(), 2, "all slots once the careful time is over");
    }

    #[test]
    fn a_notification_that_waited_too_long_is_dropped_and_the_next_goes() {
        let now = Instant::now();
        let mut state = QueueState::default();
        state.arrive(note("a", Event::Down), now);
        state.arrive(note("a", Event::Recovery), now + MAX_AGE);
        let mut expired = Vec::new();
        let next = state.start_next(8, now + MAX_AGE + Duration::from_secs(1), &mut expired);
        assert_eq!(expired.iter().map(|p| p.notification.event).collect::<Vec<_>>(), [Event::Down]);
        assert_eq!(next.map(|e| e.item.notification.event), Some(Event::Recovery));
    }

    #[test]
    fn a_delivery_that_never_reports_back_gives_its_notification_back_to_its_place() {
        let inbox: Arc<Inbox<Pending, QueueState>> = Arc::new(Inbox::new(Bound::Unbounded));
        let push = |notification| {
            inbox.push(Pending {
                id: Uuid::now_v7(),
                notification,
                seq: 0,
                decided: Instant::now(),
                outbox_write: None,
            })
        };
        for asset in ["a", "b", "c"] {
            push(note(asset, Event::Down));
        }
        push(note("a", Event::Recovery));
        let (a, b) = (inbox.take(1), inbox.take(1));
        // The channel asked to wait: back without counting an attempt.
        b.retry();
        // The delivery task died: back, counted as a failure.
        drop(a);
        assert_eq!(inbox.len(), 4);
        let in_hand: Vec<_> = std::iter::from_fn(|| Some(inbox.take(1)).filter(|lease| !lease.is_empty())).collect();
        let firsts: Vec<_> = in_hand
            .iter()
            .filter_map(|lease| {
                lease.first().map(|p| (p.notification.asset_id.as_str(), p.notification.event, lease.failures()))
            })
            .collect();
        // a's DOWN first again, its RECOVERY still behind it, and b before c by arrival.
        assert_eq!(firsts, [("a", Event::Down, 1), ("b", Event::Down, 0), ("c", Event::Down, 0)]);
    }
}
