//! Storm grouping: when many assets fail (or recover) together, a channel read by people gets
//! one message listing them instead of one message per asset.
//!
//! As Alertmanager's `group_wait`: the first DOWN (or RECOVERY) for a channel that groups opens
//! a batch, which gathers that channel's notifications of the same event for `waitSeconds`.
//! Then, if `minAssets` or more gathered, the channel gets one grouped notification listing
//! them all; otherwise each goes out on its own, late by at most the wait. Other events (PANIC,
//! REMINDER, ACK, …) are never held, except that a REMINDER for a DOWN still waiting in a batch
//! is dropped: the channel has not heard the DOWN it would remind of.
//!
//! An outage that ends while its DOWN still waits in a batch was never heard by the channel,
//! so its DOWN leaves the batch and its RECOVERY is not sent, as the policy never sends a
//! channel the RECOVERY of a DOWN it did not hear. This also keeps the order of each asset's
//! messages: a RECOVERY is never sent before its DOWN.
//!
//! Pure logic with time passed in. Batches are persistent vectors (`imbl`): the Incidents actor
//! checkpoints its memory after every event, and with ten thousand DOWNs gathered in a storm a
//! checkpoint must still cost O(1).

use imbl::{OrdMap, Vector};
use tokio::time::Instant;

use super::policy::Delivery;
use crate::config::Grouping;
use crate::notify::{Event, Notification};

/// Notifications of one event gathered for one channel.
#[derive(Debug, Clone)]
struct Batch {
    /// When the batch goes out: its first notification's arrival plus the wait.
    due: Instant,
    /// `minAssets` when the batch opened, so that a reload cannot change a batch half-way.
    min_assets: usize,
    items: Vector<Notification>,
}

/// The open batches, by (channel, event). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Grouper {
    batches: OrdMap<(String, Event), Batch>,
}

fn groupable(event: Event) -> bool {
    matches!(event, Event::Down | Event::Recovery)
}

impl Grouper {
    /// Takes the deliveries decided at `now` and returns those to send at once; the rest wait
    /// in batches for [`Grouper::wake`]. `grouping` is the policy's (None: nothing is held back)
    /// and `groups` says whether a channel takes grouped messages.
    pub fn offer(
        &mut self,
        deliveries: Vec<Delivery>,
        grouping: Option<Grouping>,
        groups: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let event = delivery.notification.event;
            if event == Event::Recovery && self.withdraw_down(&delivery) {
                continue;
            }
            if event == Event::Reminder && self.holds_down_of(&delivery) {
                continue;
            }
            let Some(grouping) = grouping.filter(|_| groupable(event) && groups(&delivery.channel)) else {
                out.push(delivery);
                continue;
            };
            let batch = self.batches.entry((delivery.channel, event)).or_insert_with(|| Batch {
                // Checked: a wait too long to represent never ends, so the batch goes out at once.
                due: now.checked_add(grouping.wait()).unwrap_or(now),
                min_assets: grouping.min_assets(),
                items: Vector::new(),
            });
            batch.items.push_back(delivery.notification);
        }
        out
    }

    /// Takes the DOWN of `recovery`'s incident out of the channel's DOWN batch, if it waits
    /// there; says whether it did.
    fn withdraw_down(&mut self, recovery: &Delivery) -> bool {
        let key = (recovery.channel.clone(), Event::Down);
        let Some(batch) = self.batches.get_mut(&key) else { return false };
        let Some(at) = batch.items.iter().position(|down| same_outage(down, &recovery.notification)) else {
            return false;
        };
        batch.items.remove(at);
        if batch.items.is_empty() {
            self.batches.remove(&key);
        }
        true
    }

    fn holds_down_of(&self, delivery: &Delivery) -> bool {
        self.batches
            .get(&(delivery.channel.clone(), Event::Down))
            .is_some_and(|batch| batch.items.iter().any(|down| same_outage(down, &delivery.notification)))
    }

    /// Sends the batches due by `now`: one grouped notification per batch that gathered
    /// `minAssets` or more, each notification on its own otherwise.
    pub fn wake(&mut self, now: Instant) -> Vec<Delivery> {
        self.release(|batch| batch.due <= now)
    }

    /// Sends every batch now, due or not (statusd is stopping: what was decided goes out
    /// rather than being lost with the process).
    pub fn flush(&mut self) -> Vec<Delivery> {
        self.release(|_| true)
    }

    fn release(&mut self, due: impl Fn(&Batch) -> bool) -> Vec<Delivery> {
        let due: Vec<(String, Event)> =
            self.batches.iter().filter(|(_, batch)| due(batch)).map(|(key, _)| key.clone()).collect();
        let mut out = Vec::new();
        for key in due {
            let Some(batch) = self.batches.remove(&key) else { continue };
            let (channel, event) = key;
            if batch.items.len() >= batch.min_assets {
                let notification = Notification::grouped(event, batch.items.into_iter().collect());
                out.push(Delivery { channel, notification });
            } else {
                out.extend(
                    batch.items.into_iter().map(|notification| Delivery { channel: channel.clone(), notification }),
                );
            }
        }
        out
    }

    /// When the next batch is due. Linear in the batches, of which there are at most two per
    /// channel (DOWN and RECOVERY).
    pub fn next_wake(&self) -> Option<Instant> {
        self.batches.values().map(|batch| batch.due).min()
    }

    /// The asset left the config: its waiting notifications are not sent.
    pub fn forget(&mut self, asset_id: &str) {
        let keys: Vec<(String, Event)> = self.batches.keys().cloned().collect();
        for key in keys {
            if let Some(batch) = self.batches.get_mut(&key) {
                batch.items.retain(|n| n.asset_id != asset_id);
                if batch.items.is_empty() {
                    self.batches.remove(&key);
                }
            }
        }
    }
}

/// Both are about the same outage: the same asset and incident.
fn same_outage(a: &Notification, b: &Notification) -> bool {
    a.asset_id == b.asset_id && a.incident_id == b.incident_id
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn grouping(min_assets: u64) -> Option<Grouping> {
        Some(Grouping { wait_seconds: WAIT.as_secs(), min_assets })
    }

    fn note(asset: u32, event: Event) -> Notification {
        Notification {
            event,
            asset_id: format!("a{asset}"),
            asset_name: format!("Asset {asset}"),
            timestamp: Utc::now(),
            details: "HTTP 500".into(),
            incident_id: Some(Uuid::from_u128(u128::from(asset))),
            group: Vec::new(),
            tier: None,
            since: None,
        }
    }

    fn to(channel: &str, asset: u32, event: Event) -> Vec<Delivery> {
        vec![Delivery { channel: channel.into(), notification: note(asset, event) }]
    }

    fn everyone(_: &str) -> bool {
        true
    }

    /// (channel, assets in the message) for each delivery.
    fn sent(deliveries: &[Delivery]) -> Vec<(&str, Event, usize)> {
        deliveries
            .iter()
            .map(|d| (d.channel.as_str(), d.notification.event, d.notification.group.len().max(1)))
            .collect()
    }

    #[test]
    fn a_storm_gathered_within_the_wait_is_one_message() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        for asset in 0..20 {
            let now = t0 + Duration::from_millis(400 * u64::from(asset));
            assert!(grouper.offer(to("chat", asset, Event::Down), grouping(3), everyone, now).is_empty());
        }
        assert_eq!(grouper.next_wake(), Some(t0 + WAIT));
        assert!(grouper.wake(t0 + WAIT - Duration::from_millis(1)).is_empty(), "not before the wait is over");
        let out = grouper.wake(t0 + WAIT);
        assert_eq!(sent(&out), [("chat", Event::Down, 20)]);
        let names: Vec<&str> = out[0].notification.group.iter().map(|n| n.asset_name.as_str()).collect();
        assert_eq!(names.len(), 20);
        assert_eq!((names[0], names[19]), ("Asset 0", "Asset 19"), "in the order they came");
        assert_eq!(out[0].notification.asset_name, "20 assets");
        assert_eq!(grouper.next_wake(), None);
    }

    #[test]
    fn a_flush_sends_every_batch_at_once_grouped_as_the_wait_would_have() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        for asset in 0..3 {
            grouper.offer(to("chat", asset, Event::Down), grouping(3), everyone, t0);
        }
        grouper.offer(to("ops", 9, Event::Down), grouping(3), everyone, t0);
        let flushed = grouper.flush();
        let mut out = sent(&flushed);
        out.sort();
        assert_eq!(out, [("chat", Event::Down, 3), ("ops", Event::Down, 1)]);
        assert_eq!(grouper.next_wake(), None, "nothing waits any more");
    }

    #[test]
    fn fewer_than_min_assets_go_out_one_by_one_after_the_wait() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        grouper.offer(to("chat", 1, Event::Down), grouping(3), everyone, t0);
        grouper.offer(to("chat", 2, Event::Down), grouping(3), everyone, t0 + Duration::from_secs(9));
        assert_eq!(sent(&grouper.wake(t0 + WAIT)), [("chat", Event::Down, 1), ("chat", Event::Down, 1)]);
    }

    #[test]
    fn exactly_min_assets_is_a_group_and_one_after_the_wait_opens_the_next_batch() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        for asset in 0..3 {
            grouper.offer(to("chat", asset, Event::Down), grouping(3), everyone, t0);
        }
        // Arrives as the batch is due but before the wake: it is still in this batch.
        grouper.offer(to("chat", 3, Event::Down), grouping(3), everyone, t0 + WAIT);
        assert_eq!(sent(&grouper.wake(t0 + WAIT)), [("chat", Event::Down, 4)]);
        // After the batch went out, a late DOWN starts a batch of its own.
        grouper.offer(to("chat", 4, Event::Down), grouping(3), everyone, t0 + WAIT);
        assert_eq!(grouper.next_wake(), Some(t0 + WAIT + WAIT));
        assert_eq!(sent(&grouper.wake(t0 + WAIT + WAIT)), [("chat", Event::Down, 1)]);
    }

    #[test]
    fn channels_that_do_not_group_and_other_events_pass_at_once() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        let chat_only = |channel: &str| channel == "chat";
        assert_eq!(
            sent(&grouper.offer(to("hook", 1, Event::Down), grouping(3), chat_only, t0)),
            [("hook", Event::Down, 1)]
        );
        for event in [Event::Panic, Event::Ack, Event::Flapping, Event::Degraded, Event::NetworkDown] {
            assert_eq!(sent(&grouper.offer(to("chat", 1, event), grouping(3), chat_only, t0)), [("chat", event, 1)]);
        }
        assert_eq!(
            sent(&grouper.offer(to("chat", 1, Event::Down), None, chat_only, t0)),
            [("chat", Event::Down, 1)],
            "no grouping policy, no waiting"
        );
        assert_eq!(grouper.next_wake(), None);
    }

    #[test]
    fn downs_and_recoveries_gather_apart_per_channel() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        for asset in 0..3 {
            for channel in ["chat", "teams"] {
                grouper.offer(to(channel, asset, Event::Down), grouping(3), everyone, t0);
            }
        }
        assert_eq!(sent(&grouper.wake(t0 + WAIT)), [("chat", Event::Down, 3), ("teams", Event::Down, 3)]);
        let t1 = t0 + Duration::from_secs(60);
        for asset in 0..3 {
            grouper.offer(to("chat", asset, Event::Recovery), grouping(3), everyone, t1);
        }
        assert_eq!(sent(&grouper.wake(t1 + WAIT)), [("chat", Event::Recovery, 3)]);
    }

    #[test]
    fn an_outage_that_ends_while_its_down_waits_is_never_sent() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        // A RECOVERY batch is already open (asset 9 recovered), then asset 1 goes down and up.
        grouper.offer(to("chat", 9, Event::Recovery), grouping(3), everyone, t0);
        grouper.offer(to("chat", 1, Event::Down), grouping(3), everyone, t0 + Duration::from_secs(1));
        grouper.offer(to("chat", 2, Event::Down), grouping(3), everyone, t0 + Duration::from_secs(1));
        assert!(grouper.offer(to("chat", 1, Event::Reminder), grouping(3), everyone, t0).is_empty());
        grouper.offer(to("chat", 1, Event::Recovery), grouping(3), everyone, t0 + Duration::from_secs(2));
        let out = grouper.wake(t0 + WAIT + WAIT);
        let assets: Vec<(&str, Event)> =
            out.iter().map(|d| (d.notification.asset_id.as_str(), d.notification.event)).collect();
        assert_eq!(assets, [("a2", Event::Down), ("a9", Event::Recovery)], "asset 1 is neither down nor up here");
    }

    #[test]
    fn a_recovery_of_a_down_already_sent_is_grouped_like_any_other() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        grouper.offer(to("chat", 1, Event::Down), grouping(3), everyone, t0);
        assert_eq!(grouper.wake(t0 + WAIT).len(), 1);
        grouper.offer(to("chat", 1, Event::Recovery), grouping(3), everyone, t0 + WAIT);
        assert_eq!(sent(&grouper.wake(t0 + WAIT + WAIT)), [("chat", Event::Recovery, 1)]);
    }

    #[test]
    fn a_removed_asset_leaves_its_batches() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        grouper.offer(to("chat", 1, Event::Down), grouping(3), everyone, t0);
        grouper.forget("a1");
        assert_eq!(grouper.next_wake(), None);
        assert!(grouper.wake(t0 + WAIT).is_empty());
    }

    #[test]
    fn a_batch_keeps_the_min_assets_it_opened_with() {
        let mut grouper = Grouper::default();
        let t0 = Instant::now();
        grouper.offer(to("chat", 1, Event::Down), grouping(2), everyone, t0);
        grouper.offer(to("chat", 2, Event::Down), grouping(50), everyone, t0);
        assert_eq!(sent(&grouper.wake(t0 + WAIT)), [("chat", Event::Down, 2)]);
    }
}
