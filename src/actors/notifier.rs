//! Notifier actor ("notifier:<name>"): delivers notifications to one channel.
//!
//! Its inbox is the channel's [`ChannelQueue`], which the Supervisor keeps: notifications wait
//! there, per asset and in order (a RECOVERY never overtakes its DOWN), and a few assets'
//! deliveries run at once. Deliveries are tasks of their own that finish even if the actor
//! panics meanwhile, so a restart neither loses a pending notification nor sends one twice; a
//! slow or dead channel never blocks the actor, the Incidents actor or the other channels.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::Services;
use crate::notify::{self, ChannelConfig, Notification};
use crate::telemetry::names;

/// Deliveries in flight per channel (each for a different asset): enough for a mass outage,
/// few enough not to flood a chat service. Of 10,000 DOWNs to a local webhook, the slowest
/// arrived 16.5 s after its asset's first failed probe with 4 in flight, 3 to 5 s with 8, 16
/// or 64 (`benches/mass_outage.rs`): past 8 a local receiver gains nothing, and 16 leaves room
/// for a receiver farther away, whose every delivery takes a round trip.
const MAX_IN_FLIGHT: usize = 16;
/// How long a stopping notifier waits for deliveries still queued or under way.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct Notifier;

pub struct NotifierArgs {
    pub queue: Arc<ChannelQueue>,
    pub services: Arc<Services>,
}

pub enum NotifierMsg {
    /// The queue changed (a notification arrived, a delivery finished): start what can start.
    Wake,
    Panic(String),
}

/// A channel's pending deliveries; outlives the actor.
pub struct ChannelQueue {
    name: String,
    channel: RwLock<Arc<ChannelConfig>>,
    state: Mutex<QueueState>,
    /// Signalled whenever a delivery finishes, for a stopping actor waiting for the last ones.
    finished: tokio::sync::Notify,
}

/// Every operation is O(1): a mass outage queues tens of thousands of notifications at once.
#[derive(Default)]
struct QueueState {
    /// Waiting notifications per asset, in order; an asset is here only while it has some.
    waiting: HashMap<String, VecDeque<Notification>>,
    /// How many notifications `waiting` holds.
    waiting_count: usize,
    /// Assets with a delivery under way.
    active: HashSet<String>,
    /// Assets with notifications waiting and none under way, in arrival order: exactly the keys
    /// of `waiting` that are not in `active`, so whether an asset is here is known without
    /// searching it.
    ready: VecDeque<String>,
}

impl QueueState {
    fn push(&mut self, notification: Notification) {
        let asset_id = notification.asset_id.clone();
        let queue = self.waiting.entry(asset_id.clone()).or_default();
        let was_waiting = !queue.is_empty();
        queue.push_back(notification);
        self.waiting_count += 1;
        if !was_waiting && !self.active.contains(&asset_id) {
            self.ready.push_back(asset_id);
        }
    }

    /// The next delivery to start, if fewer than `max_in_flight` are under way: the first
    /// notification of the asset that has been ready longest. Its asset is active until
    /// [`QueueState::finished`], so its next notification waits for this one.
    fn start_next(&mut self, max_in_flight: usize) -> Option<(String, Notification)> {
        while self.active.len() < max_in_flight {
            let asset_id = self.ready.pop_front()?;
            // Never without a waiting notification, by the invariant above; skipped if it were.
            let Some(notification) = self.waiting.get_mut(&asset_id).and_then(VecDeque::pop_front) else {
                continue;
            };
            if self.waiting.get(&asset_id).is_some_and(VecDeque::is_empty) {
                self.waiting.remove(&asset_id);
            }
            self.waiting_count -= 1;
            self.active.insert(asset_id.clone());
            return Some((asset_id, notification));
        }
        None
    }

    fn finished(&mut self, asset_id: &str) {
        if self.active.remove(asset_id) && self.waiting.contains_key(asset_id) {
            self.ready.push_back(asset_id.to_string());
        }
    }
}

impl ChannelQueue {
    pub fn new(name: &str, channel: ChannelConfig) -> Arc<ChannelQueue> {
        Arc::new(ChannelQueue {
            name: name.to_string(),
            channel: RwLock::new(Arc::new(channel)),
            state: Mutex::new(QueueState::default()),
            finished: tokio::sync::Notify::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn push(&self, notification: Notification) {
        self.state.lock().push(notification);
    }

    /// Notifications waiting or being delivered.
    pub fn len(&self) -> usize {
        let state = self.state.lock();
        state.waiting_count + state.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A changed channel (new URL, timeout) applies to the deliveries that start from now on.
    pub fn update(&self, channel: ChannelConfig) {
        *self.channel.write() = Arc::new(channel);
    }

    /// Starts deliveries while slots are free.
    fn pump(self: &Arc<Self>, services: &Arc<Services>) {
        let mut state = self.state.lock();
        while let Some((asset_id, notification)) = state.start_next(MAX_IN_FLIGHT) {
            let queue = Arc::clone(self);
            let services = Arc::clone(services);
            let channel = Arc::clone(&self.channel.read());
            // Not owned by the actor: it finishes even if the actor dies meanwhile.
            tokio::spawn(async move {
                send(&queue.name, &channel, &services.notify_client, &notification).await;
                queue.finished(&asset_id);
                services.directory.wake_notifier(&queue.name);
            });
        }
    }

    fn finished(&self, asset_id: &str) {
        self.state.lock().finished(asset_id);
        self.finished.notify_waiters();
    }
}

/// Delivers one notification, then counts and logs the outcome.
async fn send(channel_name: &str, channel: &ChannelConfig, client: &reqwest::Client, notification: &Notification) {
    let event = notification.event.as_str();
    let outcome = notify::deliver(client, channel, notification).await;
    let result = if outcome.is_ok() { "sent" } else { "failed" };
    metrics::counter!(names::NOTIFICATIONS_TOTAL, "channel" => channel_name.to_string(), "event" => event, "result" => result)
        .increment(1);
    let actor = format!("notifier:{channel_name}");
    match outcome {
        Ok(attempts) => tracing::info!(
            %actor, channel = %channel_name, asset_id = %notification.asset_id, event, attempts, "notification sent"
        ),
        Err(error) => tracing::error!(
            %actor, channel = %channel_name, asset_id = %notification.asset_id, event, %error, "notification failed"
        ),
    }
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
        // What waited while no actor ran is started right away.
        let _ = myself.cast(NotifierMsg::Wake);
        Ok(NotifierState { queue: args.queue, services: args.services })
    }

    async fn handle(
        &self,
        _myself: ActorRef<NotifierMsg>,
        message: NotifierMsg,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NotifierMsg::Wake => state.queue.pump(&state.services),
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
            let finished = state.queue.finished.notified();
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
        }
    }

    fn started(state: &mut QueueState, max: usize) -> Vec<(String, Event)> {
        std::iter::from_fn(|| state.start_next(max)).map(|(asset, n)| (asset, n.event)).collect()
    }

    #[test]
    fn an_asset_has_one_delivery_under_way_and_its_next_waits_in_order() {
        let mut state = QueueState::default();
        state.push(note("a", Event::Down));
        state.push(note("a", Event::Recovery));
        state.push(note("b", Event::Down));
        // Slots to spare, yet a's RECOVERY does not start beside its DOWN.
        assert_eq!(started(&mut state, 8), [("a".into(), Event::Down), ("b".into(), Event::Down)]);
        state.push(note("a", Event::Down));
        assert_eq!(started(&mut state, 8), []);
        state.finished("a");
        assert_eq!(started(&mut state, 8), [("a".into(), Event::Recovery)]);
        state.finished("b");
        state.finished("a");
        assert_eq!(started(&mut state, 8), [("a".into(), Event::Down)]);
        state.finished("a");
        assert_eq!((state.waiting_count, state.active.len(), state.ready.len()), (0, 0, 0));
    }

    #[test]
    fn assets_start_in_the_order_they_became_ready_within_the_slots() {
        let mut state = QueueState::default();
        for asset in ["c", "a", "b", "d"] {
            state.push(note(asset, Event::Down));
            state.push(note(asset, Event::Recovery));
        }
        assert_eq!(started(&mut state, 2), [("c".into(), Event::Down), ("a".into(), Event::Down)]);
        state.finished("a");
        state.finished("c");
        // b and d were ready before a and c came back.
        assert_eq!(started(&mut state, 2), [("b".into(), Event::Down), ("d".into(), Event::Down)]);
        assert_eq!(state.ready, ["a", "c"]);
        assert_eq!(state.waiting_count + state.active.len(), 6);
    }
}
