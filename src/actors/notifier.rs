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

/// Deliveries in flight per channel: enough for a burst of outages, few enough not to trip a
/// chat service's rate limit.
const MAX_IN_FLIGHT: usize = 4;
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

#[derive(Default)]
struct QueueState {
    /// Waiting notifications per asset, in order.
    waiting: HashMap<String, VecDeque<Notification>>,
    /// Assets with a delivery under way.
    active: HashSet<String>,
    /// Assets with notifications waiting and none under way, in arrival order.
    ready: VecDeque<String>,
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
        let mut state = self.state.lock();
        let asset_id = notification.asset_id.clone();
        state.waiting.entry(asset_id.clone()).or_default().push_back(notification);
        if !state.active.contains(&asset_id) && !state.ready.contains(&asset_id) {
            state.ready.push_back(asset_id);
        }
    }

    /// Notifications waiting or being delivered.
    pub fn len(&self) -> usize {
        let state = self.state.lock();
        state.waiting.values().map(VecDeque::len).sum::<usize>() + state.active.len()
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
        while state.active.len() < MAX_IN_FLIGHT {
            let Some(asset_id) = state.ready.pop_front() else { break };
            let Some(notification) = state.waiting.get_mut(&asset_id).and_then(VecDeque::pop_front) else {
                continue;
            };
            if state.waiting.get(&asset_id).is_some_and(VecDeque::is_empty) {
                state.waiting.remove(&asset_id);
            }
            state.active.insert(asset_id.clone());
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
        {
            let mut state = self.state.lock();
            state.active.remove(asset_id);
            if state.waiting.contains_key(asset_id) && !state.ready.iter().any(|id| id == asset_id) {
                state.ready.push_back(asset_id.to_string());
            }
        }
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
