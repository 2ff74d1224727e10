//! The notification policy: which channel hears what, and when.
//!
//! Rules, per asset and channel:
//! - at most one notification per throttle window; a DOWN that falls inside the window is held
//!   back and sent when the window ends if the outage is still going on (so a flapping asset
//!   is reported once, and a real outage is never swallowed);
//! - a channel that heard a DOWN always hears its RECOVERY, throttle or not; a channel that never
//!   heard the DOWN is not told about a recovery from it;
//! - with `repeatAlerts`, channels that heard a DOWN get a REMINDER every repeat interval while
//!   the incident stays open.
//!
//! Pure logic with time passed in, so every rule is unit-tested without clocks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uuid::Uuid;

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
    next_reminder: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct Dispatcher {
    policy: NotificationPolicy,
    /// asset id → channel name → memory; ordered, so that wake-ups send in a stable order.
    memory: BTreeMap<String, BTreeMap<String, ChannelMemory>>,
    /// When each (actor, channel) last heard a PANIC.
    panics: BTreeMap<(String, String), Instant>,
}

impl Dispatcher {
    pub fn new(policy: NotificationPolicy) -> Self {
        Dispatcher { policy, memory: BTreeMap::new(), panics: BTreeMap::new() }
    }

    /// A reloaded policy applies from now on; what channels already heard is kept.
    pub fn set_policy(&mut self, policy: NotificationPolicy) {
        self.policy = policy;
    }

    /// A PANIC for the `onPanic` channels: at most one per actor and channel per throttle
    /// window, so a crash loop is reported, not streamed.
    pub fn panic(&mut self, panic: Notification, now: Instant) -> Vec<Delivery> {
        let throttle = self.policy.throttle();
        let mut deliveries = Vec::new();
        for channel in &self.policy.on_panic {
            let key = (panic.asset_name.clone(), channel.clone());
            if self.panics.get(&key).is_some_and(|sent| now < *sent + throttle) {
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
        let repeat = self.policy.repeat_interval();
        let channels = self.memory.entry(down.asset_id.clone()).or_default();
        for channel in &self.policy.on_down {
            let memory = channels.entry(channel.clone()).or_default();
            memory.heard_down = Some(down.clone());
            memory.next_reminder = repeat.map(|r| now + r);
        }
    }

    pub fn down(&mut self, down: Notification, now: Instant) -> Vec<Delivery> {
        let throttle = self.policy.throttle();
        let repeat = self.policy.repeat_interval();
        let channels = self.memory.entry(down.asset_id.clone()).or_default();
        let mut deliveries = Vec::new();
        for channel in &self.policy.on_down {
            let memory = channels.entry(channel.clone()).or_default();
            if memory.last_sent.is_some_and(|sent| now < sent + throttle) {
                memory.deferred = Some(down.clone());
                continue;
            }
            memory.last_sent = Some(now);
            memory.heard_down = Some(down.clone());
            memory.deferred = None;
            memory.next_reminder = repeat.map(|r| now + r);
            deliveries.push(Delivery { channel: channel.clone(), notification: down.clone() });
        }
        deliveries
    }

    pub fn recovery(&mut self, recovery: Notification, now: Instant) -> Vec<Delivery> {
        let throttle = self.policy.throttle();
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
            memory.next_reminder = None;
            let heard = memory.heard_down.take().is_some_and(|down| down.incident_id == recovery.incident_id);
            if !self.policy.on_recovery.contains(channel) {
                continue;
            }
            let tell = if heard {
                true
            } else if self.policy.on_down.contains(channel) {
                // It never heard this DOWN (throttled away): a recovery would make no sense.
                false
            } else {
                memory.last_sent.is_none_or(|sent| now >= sent + throttle)
            };
            if tell {
                memory.last_sent = Some(now);
                deliveries.push(Delivery { channel: channel.clone(), notification: recovery.clone() });
            }
        }
        deliveries
    }

    /// Sends what is due by `now`: held-back DOWNs whose window ended, and reminders.
    pub fn wake(&mut self, now: Instant, wall_clock: DateTime<Utc>) -> Vec<Delivery> {
        let throttle = self.policy.throttle();
        let repeat = self.policy.repeat_interval();
        let mut deliveries = Vec::new();
        for channels in self.memory.values_mut() {
            for (channel, memory) in channels.iter_mut() {
                let window_over = memory.last_sent.is_none_or(|sent| now >= sent + throttle);
                if window_over && let Some(down) = memory.deferred.take() {
                    memory.last_sent = Some(now);
                    memory.next_reminder = repeat.map(|r| now + r);
                    memory.heard_down = Some(down.clone());
                    deliveries.push(Delivery { channel: channel.clone(), notification: down });
                    continue;
                }
                if let (Some(due), Some(down), Some(repeat)) = (memory.next_reminder, &memory.heard_down, repeat)
                    && now >= due
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
                    memory.next_reminder = Some(now + repeat);
                    deliveries.push(Delivery { channel: channel.clone(), notification: reminder });
                }
            }
        }
        deliveries
    }

    /// When [`Dispatcher::wake`] next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let throttle = self.policy.throttle();
        self.memory
            .values()
            .flat_map(BTreeMap::values)
            .flat_map(|memory| {
                let deferred = memory
                    .deferred
                    .as_ref()
                    .map(|_| memory.last_sent.map_or_else(Instant::now, |sent| sent + throttle));
                [deferred, memory.next_reminder]
            })
            .flatten()
            .min()
    }

    /// Forgets an asset's channels (it left the config).
    pub fn forget(&mut self, asset_id: &str) {
        self.memory.remove(asset_id);
    }

    /// The incident a channel was told about for an asset, if any (for tests and the API).
    pub fn heard_down(&self, asset_id: &str, channel: &str) -> Option<Uuid> {
        self.memory.get(asset_id)?.get(channel)?.heard_down.as_ref()?.incident_id
    }
}

/// `1h 5m`, `3m 20s`, `45s`: how long an outage lasted, for people.
pub fn human_duration(duration: chrono::TimeDelta) -> String {
    let total = duration.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
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
        dispatcher.set_policy(NotificationPolicy {
            on_down: vec!["teams".into()],
            on_recovery: vec!["teams".into()],
            ..policy(300)
        });
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(1));
        assert_eq!(channels(&sent), [("teams", Event::Recovery)]);
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let d = chrono::TimeDelta::seconds;
        assert_eq!(human_duration(d(45)), "45s");
        assert_eq!(human_duration(d(200)), "3m 20s");
        assert_eq!(human_duration(d(3900)), "1h 5m");
        assert_eq!(human_duration(d(90_000)), "1d 1h");
    }
}
