//! The notification policy: which channel hears what, and when.
//!
//! Rules, per asset and channel:
//! - at most one notification per throttle window; a DOWN that falls inside the window is held
//!   back and sent when the window ends if the outage is still going on (so a flapping asset
//!   is reported once, and a real outage is never swallowed);
//! - a channel that heard a DOWN always hears its RECOVERY, throttle or not; a channel that never
//!   heard the DOWN is not told about a recovery from it;
//! - with `repeatAlerts`, channels that heard a DOWN get a REMINDER every repeat interval while
//!   the incident stays open, counted from the DOWN or the last REMINDER by the policy in force.
//!
//! Pure logic with time passed in, so every rule is unit-tested without clocks.
//!
//! Cost: a mass outage brings tens of thousands of events in seconds, and the Incidents actor
//! checkpoints the dispatcher after each one. So the maps are persistent (`imbl`): a clone
//! shares every node and costs O(1), a change copies only the path to what it changes
//! (O(log n)). Deadlines (held-back DOWNs, reminders) sit in an ordered index keyed by (when,
//! asset, channel), so a wake touches only what is due and the next wake is the index's first
//! key: every operation is O(log n) per channel it concerns, whatever the number of assets.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imbl::{HashMap, OrdSet};
use tokio::time::Instant;

use crate::config::NotificationPolicy;
use crate::notify::{Event, Notification};

/// A notification for one channel, decided now.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel: String,
    pub notification: Notification,
}

#[derive(Debug, Clone, Default)]
struct ChannelMemory {
    last_sent: Option<Instant>,
    /// The DOWN this channel heard, whose RECOVERY it is owed.
    heard_down: Option<Notification>,
    /// A DOWN held back by the throttle.
    deferred: Option<Notification>,
    /// What reminders count from while `heard_down` is set: when the channel heard the DOWN or
    /// its last REMINDER (or the restart that resumed the outage). Kept as a start rather than a
    /// due time so that a reloaded repeat interval applies to the very next reminder.
    reminded_at: Option<Instant>,
    /// This channel's key in the deadline index, if it has one; see [`ChannelMemory::deadline`].
    due: Option<Instant>,
}

/// The numbers of the policy that deadlines depend on.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timing {
    throttle: Duration,
    repeat: Option<Duration>,
}

impl Timing {
    fn of(policy: &NotificationPolicy) -> Timing {
        Timing { throttle: policy.throttle(), repeat: policy.repeat_interval() }
    }
}

/// `now` falls inside the window of `length` that opened at `start`. A window too long to
/// represent never ends.
fn within(start: Instant, length: Duration, now: Instant) -> bool {
    start.checked_add(length).is_none_or(|end| now < end)
}

impl ChannelMemory {
    /// When [`Dispatcher::wake`] has something to do for this channel: the end of the throttle
    /// window for a held-back DOWN, or the next reminder, whichever comes first.
    fn deadline(&self, timing: Timing, now: Instant) -> Option<Instant> {
        let deferred = match (&self.deferred, self.last_sent) {
            (None, _) => None,
            // Held back by a window that never opened: due at once.
            (Some(_), None) => Some(now),
            (Some(_), Some(sent)) => sent.checked_add(timing.throttle),
        };
        let reminder = match (&self.heard_down, self.reminded_at, timing.repeat) {
            (Some(_), Some(from), Some(repeat)) => from.checked_add(repeat),
            _ => None,
        };
        deferred.into_iter().chain(reminder).min()
    }
}

/// A key of the deadline index: (when, asset id, channel name).
type Deadline = (Instant, String, String);

/// Puts a channel where its memory now says in the deadline index. Every change to a channel's
/// memory ends with this, so the index always mirrors the memories.
fn rekey(
    deadlines: &mut OrdSet<Deadline>,
    (asset, channel): (&str, &str),
    memory: &mut ChannelMemory,
    timing: Timing,
    now: Instant,
) {
    let due = memory.deadline(timing, now);
    if due == memory.due {
        return;
    }
    if let Some(old) = memory.due.take() {
        deadlines.remove(&(old, asset.to_string(), channel.to_string()));
    }
    if let Some(new) = due {
        deadlines.insert((new, asset.to_string(), channel.to_string()));
    }
    memory.due = due;
}

#[derive(Debug, Clone)]
pub struct Dispatcher {
    policy: NotificationPolicy,
    /// asset id → channel name → memory.
    memory: HashMap<String, BTreeMap<String, ChannelMemory>>,
    /// Every channel with a deadline, in the order they fall due (then by asset and channel, a
    /// stable order for those due together).
    deadlines: OrdSet<Deadline>,
    /// When each (actor, channel) last heard a PANIC.
    panics: HashMap<(String, String), Instant>,
}

impl Dispatcher {
    pub fn new(policy: NotificationPolicy) -> Self {
        Dispatcher { policy, memory: HashMap::new(), deadlines: OrdSet::new(), panics: HashMap::new() }
    }

    /// The policy in force.
    pub fn policy(&self) -> &NotificationPolicy {
        &self.policy
    }

    /// A reloaded policy applies from now on; what channels already heard is kept. A changed
    /// throttle or repeat interval moves the pending deadlines (O(n), once per reload).
    pub fn set_policy(&mut self, policy: NotificationPolicy, now: Instant) {
        let before = Timing::of(&self.policy);
        self.policy = policy;
        let timing = Timing::of(&self.policy);
        if timing == before {
            return;
        }
        for (asset, channels) in self.memory.iter_mut() {
            for (channel, memory) in channels.iter_mut() {
                rekey(&mut self.deadlines, (asset, channel), memory, timing, now);
            }
        }
    }

    /// A PANIC for the `onPanic` channels: at most one per actor and channel per throttle
    /// window, so a crash loop is reported, not streamed.
    pub fn panic(&mut self, panic: Notification, now: Instant) -> Vec<Delivery> {
        let throttle = self.policy.throttle();
        let mut deliveries = Vec::new();
        for channel in &self.policy.on_panic {
            let key = (panic.asset_name.clone(), channel.clone());
            if self.panics.get(&key).is_some_and(|sent| within(*sent, throttle, now)) {
                continue;
            }
            self.panics.insert(key, now);
            deliveries.push(Delivery { channel: channel.clone(), notification: panic.clone() });
        }
        deliveries
    }

    /// Restores an outage that was open when statusd stopped: its DOWN went out back then, so
    /// it is not sent again, and its RECOVERY is owed to the DOWN channels.
    pub fn resume(&mut self, down: Notification, now: Instant) {
        let timing = Timing::of(&self.policy);
        let channels = self.memory.entry(down.asset_id.clone()).or_default();
        for channel in &self.policy.on_down {
            let memory = channels.entry(channel.clone()).or_default();
            memory.heard_down = Some(down.clone());
            memory.reminded_at = Some(now);
            rekey(&mut self.deadlines, (&down.asset_id, channel), memory, timing, now);
        }
    }

    /// The flap breaker tripped: the DOWN channels hear one FLAPPING, about the incident the
    /// breaker keeps open, and are owed its RECOVERY; no reminders while the asset flaps.
    pub fn flapping(&mut self, flapping: Notification, now: Instant) -> Vec<Delivery> {
        let timing = Timing::of(&self.policy);
        let channels = self.memory.entry(flapping.asset_id.clone()).or_default();
        let mut deliveries = Vec::new();
        for channel in &self.policy.on_down {
            let memory = channels.entry(channel.clone()).or_default();
            memory.last_sent = Some(now);
            memory.heard_down = Some(flapping.clone());
            memory.deferred = None;
            memory.reminded_at = None;
            rekey(&mut self.deadlines, (&flapping.asset_id, channel), memory, timing, now);
            deliveries.push(Delivery { channel: channel.clone(), notification: flapping.clone() });
        }
        deliveries
    }

    pub fn down(&mut self, down: Notification, now: Instant) -> Vec<Delivery> {
        let timing = Timing::of(&self.policy);
        let channels = self.memory.entry(down.asset_id.clone()).or_default();
        let mut deliveries = Vec::new();
        for channel in &self.policy.on_down {
            let memory = channels.entry(channel.clone()).or_default();
            if memory.last_sent.is_some_and(|sent| within(sent, timing.throttle, now)) {
                memory.deferred = Some(down.clone());
            } else {
                memory.last_sent = Some(now);
                memory.heard_down = Some(down.clone());
                memory.deferred = None;
                memory.reminded_at = Some(now);
                deliveries.push(Delivery { channel: channel.clone(), notification: down.clone() });
            }
            rekey(&mut self.deadlines, (&down.asset_id, channel), memory, timing, now);
        }
        deliveries
    }

    pub fn recovery(&mut self, recovery: Notification, now: Instant) -> Vec<Delivery> {
        let timing = Timing::of(&self.policy);
        let channels = self.memory.entry(recovery.asset_id.clone()).or_default();
        let mut deliveries = Vec::new();
        let mut involved: Vec<&String> = Vec::new();
        for channel in self.policy.on_down.iter().chain(&self.policy.on_recovery) {
            if !involved.contains(&channel) {
                involved.push(channel);
            }
        }
        for channel in involved {
            let memory = channels.entry(channel.clone()).or_default();
            // Whatever happens below, this outage is over for the channel.
            memory.deferred = None;
            memory.reminded_at = None;
            let heard = memory.heard_down.take().is_some_and(|down| down.incident_id == recovery.incident_id);
            rekey(&mut self.deadlines, (&recovery.asset_id, channel), memory, timing, now);
            if !self.policy.on_recovery.contains(channel) {
                continue;
            }
            let tell = if heard {
                true
            } else if self.policy.on_down.contains(channel) {
                // It never heard this DOWN (throttled away): a recovery would make no sense.
                false
            } else {
                memory.last_sent.is_none_or(|sent| !within(sent, timing.throttle, now))
            };
            if tell {
                memory.last_sent = Some(now);
                deliveries.push(Delivery { channel: channel.clone(), notification: recovery.clone() });
            }
        }
        deliveries
    }

    /// Sends what is due by `now`: held-back DOWNs whose window ended, and reminders. Touches
    /// only the channels that are due.
    pub fn wake(&mut self, now: Instant, wall_clock: DateTime<Utc>) -> Vec<Delivery> {
        let timing = Timing::of(&self.policy);
        // Taken out first, so that whatever falls due again is left for the next wake.
        let mut due = Vec::new();
        while self.deadlines.get_min().is_some_and(|(at, _, _)| *at <= now) {
            due.extend(self.deadlines.remove_min());
        }
        let mut deliveries = Vec::new();
        for (_, asset, channel) in due {
            let Some(memory) = self.memory.get_mut(&asset).and_then(|channels| channels.get_mut(&channel)) else {
                continue;
            };
            memory.due = None;
            let window_over = memory.last_sent.is_none_or(|sent| !within(sent, timing.throttle, now));
            if window_over && let Some(down) = memory.deferred.take() {
                memory.last_sent = Some(now);
                memory.reminded_at = Some(now);
                memory.heard_down = Some(down.clone());
                deliveries.push(Delivery { channel: channel.clone(), notification: down });
            } else if let (Some(from), Some(down), Some(repeat)) =
                (memory.reminded_at, &memory.heard_down, timing.repeat)
                && from.checked_add(repeat).is_some_and(|at| now >= at)
            {
                let reminder = Notification {
                    event: Event::Reminder,
                    timestamp: wall_clock,
                    details: format!(
                        "still down, since {} ({}): {}",
                        down.timestamp.to_rfc3339(),
                        human_duration(wall_clock - down.timestamp),
                        down.details
                    ),
                    ..down.clone()
                };
                memory.last_sent = Some(now);
                memory.reminded_at = Some(now);
                deliveries.push(Delivery { channel: channel.clone(), notification: reminder });
            }
            rekey(&mut self.deadlines, (&asset, &channel), memory, timing, now);
        }
        deliveries
    }

    /// When [`Dispatcher::wake`] next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        self.deadlines.get_min().map(|(at, _, _)| *at)
    }

    /// Forgets an asset's channels (it left the config).
    pub fn forget(&mut self, asset_id: &str) {
        for (channel, memory) in self.memory.remove(asset_id).into_iter().flatten() {
            if let Some(at) = memory.due {
                self.deadlines.remove(&(at, asset_id.to_string(), channel));
            }
        }
    }
}

/// `1h 5m`, `3m 20s`, `45s`, `1day 1h`: how long an outage lasted, for people, in `humantime`'s
/// words, to the two largest units (whole minutes past an hour, whole hours past a day).
pub fn human_duration(duration: chrono::TimeDelta) -> String {
    let seconds = u64::try_from(duration.num_seconds()).unwrap_or(0);
    let precision = match seconds {
        86_400.. => 3600,
        3600.. => 60,
        _ => 1,
    };
    humantime::format_duration(std::time::Duration::from_secs(seconds - seconds % precision)).to_string()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use std::time::Duration;

    fn policy(throttle: u64) -> NotificationPolicy {
        NotificationPolicy {
            on_down: vec!["teams".into(), "slack".into()],
            on_recovery: vec!["teams".into(), "slack".into()],
            throttle_seconds: throttle,
            ..NotificationPolicy::default()
        }
    }

    fn note(event: Event, incident: u128) -> Notification {
        Notification {
            event,
            asset_id: "api".into(),
            asset_name: "API".into(),
            timestamp: DateTime::UNIX_EPOCH,
            details: "HTTP 500".into(),
            incident_id: Some(Uuid::from_u128(incident)),
            group: Vec::new(),
        }
    }

    fn channels(deliveries: &[Delivery]) -> Vec<(&str, Event)> {
        deliveries.iter().map(|d| (d.channel.as_str(), d.notification.event)).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn down_and_recovery_reach_every_listed_channel() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        let sent = dispatcher.down(note(Event::Down, 1), t0);
        assert_eq!(channels(&sent), [("teams", Event::Down), ("slack", Event::Down)]);
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(10));
        assert_eq!(channels(&sent), [("teams", Event::Recovery), ("slack", Event::Recovery)]);
    }

    #[test]
    fn a_flapping_asset_is_reported_once_per_window() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        assert_eq!(dispatcher.down(note(Event::Down, 1), t0).len(), 2);
        // RECOVERY goes out despite the throttle: the channels heard the DOWN.
        assert_eq!(dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(5)).len(), 2);
        // Down again inside the window: held back, and dropped when it recovers in time.
        assert!(dispatcher.down(note(Event::Down, 2), t0 + secs(10)).is_empty());
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(305)));
        assert!(dispatcher.recovery(note(Event::Recovery, 2), t0 + secs(20)).is_empty());
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(400), Utc::now()).is_empty());
    }

    #[test]
    fn a_held_back_down_is_sent_when_the_window_ends_if_still_down() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        dispatcher.down(note(Event::Down, 1), t0);
        dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(5));
        assert!(dispatcher.down(note(Event::Down, 2), t0 + secs(10)).is_empty());
        assert!(dispatcher.wake(t0 + secs(304), Utc::now()).is_empty());
        let sent = dispatcher.wake(t0 + secs(305), Utc::now());
        assert_eq!(channels(&sent), [("slack", Event::Down), ("teams", Event::Down)]);
        // ...and then the channels are owed its recovery.
        let sent = dispatcher.recovery(note(Event::Recovery, 2), t0 + secs(306));
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn no_throttle_means_every_transition_is_sent() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(0));
        for i in 0..5 {
            assert_eq!(dispatcher.down(note(Event::Down, i), t0).len(), 2);
            assert_eq!(dispatcher.recovery(note(Event::Recovery, i), t0).len(), 2);
        }
    }

    #[test]
    fn recovery_only_channels_are_throttled_like_any_other() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(NotificationPolicy {
            on_down: vec![],
            on_recovery: vec!["log".into()],
            throttle_seconds: 60,
            ..NotificationPolicy::default()
        });
        assert!(dispatcher.down(note(Event::Down, 1), t0).is_empty());
        assert_eq!(dispatcher.recovery(note(Event::Recovery, 1), t0).len(), 1);
        dispatcher.down(note(Event::Down, 2), t0 + secs(1));
        assert!(dispatcher.recovery(note(Event::Recovery, 2), t0 + secs(2)).is_empty());
        dispatcher.down(note(Event::Down, 3), t0 + secs(61));
        assert_eq!(dispatcher.recovery(note(Event::Recovery, 3), t0 + secs(62)).len(), 1);
    }

    #[test]
    fn throttle_is_per_asset() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        dispatcher.down(note(Event::Down, 1), t0);
        let other = Notification { asset_id: "web".into(), ..note(Event::Down, 2) };
        assert_eq!(dispatcher.down(other, t0 + secs(1)).len(), 2);
    }

    #[test]
    fn reminders_repeat_while_down_and_stop_at_recovery() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(NotificationPolicy {
            repeat_alerts: true,
            repeat_interval_seconds: Some(600),
            ..policy(300)
        });
        dispatcher.down(note(Event::Down, 1), t0);
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(600)));
        assert!(dispatcher.wake(t0 + secs(599), Utc::now()).is_empty());
        let sent = dispatcher.wake(t0 + secs(600), DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(3900));
        assert_eq!(channels(&sent), [("slack", Event::Reminder), ("teams", Event::Reminder)]);
        assert_eq!(sent[0].notification.details, "still down, since 1970-01-01T00:00:00+00:00 (1h 5m): HTTP 500");
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(1200)));
        dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(700));
        assert_eq!(dispatcher.next_wake(), None);
    }

    #[test]
    fn a_resumed_outage_sends_no_second_down_but_its_recovery() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        dispatcher.resume(note(Event::Down, 1), t0);
        assert!(dispatcher.wake(t0 + secs(1000), Utc::now()).is_empty());
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(1));
        assert_eq!(channels(&sent), [("teams", Event::Recovery), ("slack", Event::Recovery)]);
    }

    #[test]
    fn panics_reach_the_on_panic_channels_once_per_window_per_actor() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(NotificationPolicy { on_panic: vec!["ops".into()], ..policy(60) });
        let panic = |actor: &str| Notification {
            event: Event::Panic,
            asset_name: actor.into(),
            incident_id: None,
            ..note(Event::Panic, 0)
        };
        assert_eq!(channels(&dispatcher.panic(panic("incidents"), t0)), [("ops", Event::Panic)]);
        assert!(dispatcher.panic(panic("incidents"), t0 + secs(30)).is_empty());
        assert_eq!(dispatcher.panic(panic("asset:api"), t0 + secs(30)).len(), 1);
        assert_eq!(dispatcher.panic(panic("incidents"), t0 + secs(61)).len(), 1);
    }

    #[test]
    fn a_new_policy_applies_without_forgetting_who_heard_the_down() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        dispatcher.down(note(Event::Down, 1), t0);
        dispatcher.set_policy(
            NotificationPolicy { on_down: vec!["teams".into()], on_recovery: vec!["teams".into()], ..policy(300) },
            t0,
        );
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(1));
        assert_eq!(channels(&sent), [("teams", Event::Recovery)]);
    }

    /// The deadline index holds exactly the channels that have a deadline, under it.
    fn assert_index_mirrors_memory(dispatcher: &Dispatcher, now: Instant) {
        let timing = Timing::of(&dispatcher.policy);
        let mut expected = OrdSet::new();
        for (asset, channels) in &dispatcher.memory {
            for (channel, memory) in channels {
                assert_eq!(memory.due, memory.deadline(timing, now), "{asset}/{channel}");
                if let Some(at) = memory.due {
                    expected.insert((at, asset.clone(), channel.clone()));
                }
            }
        }
        assert_eq!(dispatcher.deadlines, expected);
    }

    fn asset(id: &str, event: Event, incident: u128) -> Notification {
        Notification { asset_id: id.into(), ..note(event, incident) }
    }

    /// Each asset: a DOWN at `t0`, its recovery at `recovered`, down again at once (held back
    /// until the window from `recovered` ends).
    fn held_back(dispatcher: &mut Dispatcher, id: &str, t0: Instant, recovered: Instant) {
        dispatcher.down(asset(id, Event::Down, 1), t0);
        dispatcher.recovery(asset(id, Event::Recovery, 1), recovered);
        assert!(dispatcher.down(asset(id, Event::Down, 2), recovered).is_empty());
    }

    #[test]
    fn deadlines_fire_in_the_order_they_fall_due_and_only_once_due() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(NotificationPolicy {
            on_down: vec!["teams".into()],
            on_recovery: vec!["teams".into()],
            ..policy(300)
        });
        // Asset names in the opposite order of their deadlines.
        held_back(&mut dispatcher, "c", t0, t0 + secs(1));
        held_back(&mut dispatcher, "b", t0, t0 + secs(2));
        held_back(&mut dispatcher, "a", t0, t0 + secs(3));
        assert_index_mirrors_memory(&dispatcher, t0);
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(301)));
        assert!(dispatcher.wake(t0 + secs(300), Utc::now()).is_empty());
        let sent = dispatcher.wake(t0 + secs(301), Utc::now());
        assert_eq!(sent.iter().map(|d| d.notification.asset_id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(302)));
        // A late wake sends everything due, earliest deadline first, each once.
        let sent = dispatcher.wake(t0 + secs(400), Utc::now());
        assert_eq!(sent.iter().map(|d| d.notification.asset_id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert!(sent.iter().all(|d| d.notification.event == Event::Down));
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(10_000), Utc::now()).is_empty());
        assert_index_mirrors_memory(&dispatcher, t0 + secs(400));
    }

    #[test]
    fn recovered_and_removed_assets_leave_the_index_and_never_fire() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(NotificationPolicy {
            repeat_alerts: true,
            repeat_interval_seconds: Some(600),
            ..policy(300)
        });
        held_back(&mut dispatcher, "flapping", t0, t0 + secs(1));
        dispatcher.down(asset("reminded", Event::Down, 3), t0);
        dispatcher.down(asset("removed", Event::Down, 4), t0);
        dispatcher.resume(asset("resumed", Event::Down, 5), t0);
        assert_eq!(dispatcher.deadlines.len(), 8, "two channels each");
        dispatcher.recovery(asset("flapping", Event::Recovery, 2), t0 + secs(2));
        dispatcher.recovery(asset("reminded", Event::Recovery, 3), t0 + secs(2));
        dispatcher.recovery(asset("resumed", Event::Recovery, 5), t0 + secs(2));
        dispatcher.forget("removed");
        assert_index_mirrors_memory(&dispatcher, t0 + secs(2));
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(100_000), Utc::now()).is_empty());
    }

    #[test]
    fn a_new_throttle_or_repeat_interval_moves_the_pending_deadlines() {
        let t0 = Instant::now();
        let reminders = |repeat: Option<u64>, throttle: u64| NotificationPolicy {
            on_down: vec!["teams".into()],
            on_recovery: vec!["teams".into()],
            repeat_alerts: repeat.is_some(),
            repeat_interval_seconds: repeat,
            ..policy(throttle)
        };
        let mut dispatcher = Dispatcher::new(reminders(Some(600), 300));
        held_back(&mut dispatcher, "held", t0, t0 + secs(10));
        dispatcher.down(asset("down", Event::Down, 7), t0 + secs(20));
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(310)));

        // A shorter window sends the held-back DOWN sooner; a shorter repeat, the next reminder.
        dispatcher.set_policy(reminders(Some(120), 60), t0 + secs(30));
        assert_index_mirrors_memory(&dispatcher, t0 + secs(30));
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(70)));
        let sent = dispatcher.wake(t0 + secs(70), Utc::now());
        assert_eq!(channels(&sent), [("teams", Event::Down)]);
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(140)));
        let sent = dispatcher.wake(t0 + secs(140), Utc::now());
        assert_eq!(
            sent.iter().map(|d| (d.notification.asset_id.as_str(), d.notification.event)).collect::<Vec<_>>(),
            [("down", Event::Reminder)]
        );

        // Reminders off: nothing is due any more (no wake-up that would find nothing to do).
        dispatcher.set_policy(reminders(None, 60), t0 + secs(150));
        assert_index_mirrors_memory(&dispatcher, t0 + secs(150));
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(10_000), Utc::now()).is_empty());

        // On again: counted from the last reminder, by the new interval.
        dispatcher.set_policy(reminders(Some(900), 60), t0 + secs(160));
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(970)));
        assert_index_mirrors_memory(&dispatcher, t0 + secs(160));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let d = chrono::TimeDelta::seconds;
        assert_eq!(human_duration(d(45)), "45s");
        assert_eq!(human_duration(d(200)), "3m 20s");
        assert_eq!(human_duration(d(3900)), "1h 5m");
        assert_eq!(human_duration(d(3959)), "1h 5m");
        assert_eq!(human_duration(d(90_000)), "1day 1h");
        assert_eq!(human_duration(d(3 * 86_400 + 7200 + 59)), "3days 2h");
        assert_eq!(human_duration(d(0)), "0s");
        assert_eq!(human_duration(d(-5)), "0s");
    }
}
