//! The notification policy: which channel hears what, and when.
//!
//! Rules, per asset and channel, under the asset's policy (the first route whose `match` its
//! metadata meets, the top level for every key the route leaves unset):
//! - at most one notification per throttle window; a DOWN that falls inside the window is held
//!   back and sent when the window ends if the outage is still going on (so a flapping asset
//!   is reported once, and a real outage is never swallowed);
//! - the DOWN goes out by tiers: tier 0 (`onDown`, or the escalation's first tier) when the
//!   incident opens, each further tier once the incident has been open its `afterSeconds`,
//!   unless it was acknowledged first; each tier is notified once, and a channel already paged
//!   by an earlier tier is not paged again;
//! - a channel that heard a DOWN always hears its RECOVERY, throttle or not; a channel that never
//!   heard the DOWN is not told about a recovery from it;
//! - with `repeatAlerts`, channels that heard a DOWN get a REMINDER every repeat interval while
//!   the incident stays open, counted from the DOWN or the last REMINDER by the policy in force;
//! - an acknowledgement sends one ACK to the channels that heard the DOWN and stops reminders
//!   and tiers; an asset held (by a maintenance window) gets neither reminders nor tiers until
//!   it is released, when due tiers go out and reminders count from the release.
//!
//! Pure logic with time passed in, so every rule is unit-tested without clocks.
//!
//! Cost: a mass outage brings tens of thousands of events in seconds, and the Incidents actor
//! checkpoints the dispatcher after each one. So the maps are persistent (`imbl`): a clone
//! shares every node and costs O(1), a change copies only the path to what it changes
//! (O(log n)). Deadlines (held-back DOWNs, reminders, the next tier) sit in an ordered index
//! keyed by (when, asset, slot), so a wake touches only what is due and the next wake is the
//! index's first key: every operation is O(log n) per channel it concerns, whatever the number
//! of assets. A reload re-keys every deadline once (O(n log n)).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imbl::{HashMap, OrdSet};
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::{AssetPolicy, Metadata, NotificationPolicy};
use crate::notify::{Event, Notification};

/// A notification for one channel, decided now.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel: String,
    pub notification: Notification,
}

/// A tier reached: its channels were paged (or, throttled, will be when their window ends).
#[derive(Debug, Clone, PartialEq)]
pub struct Climb {
    pub asset_id: String,
    pub incident_id: Option<Uuid>,
    pub tier: u32,
    /// The tier's channels, as configured.
    pub channels: Vec<String>,
}

/// Every asset's metadata by id, as the manifest gives it (what routes match on).
pub type AssetsMetadata = std::collections::HashMap<String, Metadata>;

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
    fn of(policy: &AssetPolicy<'_>) -> Timing {
        Timing { throttle: policy.throttle(), repeat: policy.repeat_interval() }
    }
}

/// What keeps an asset's channels quiet: a hold (maintenance) stops everything, an
/// acknowledgement stops reminders.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Gate {
    held: bool,
    acknowledged: bool,
}

/// `now` falls inside the window of `length` that opened at `start`. A window too long to
/// represent never ends.
fn within(start: Instant, length: Duration, now: Instant) -> bool {
    start.checked_add(length).is_none_or(|end| now < end)
}

impl ChannelMemory {
    /// When [`Dispatcher::wake`] has something to do for this channel: the end of the throttle
    /// window for a held-back DOWN, or the next reminder, whichever comes first.
    fn deadline(&self, timing: Timing, gate: Gate, now: Instant) -> Option<Instant> {
        if gate.held {
            return None;
        }
        let deferred = match (&self.deferred, self.last_sent) {
            (None, _) => None,
            // Held back by a window that never opened: due at once.
            (Some(_), None) => Some(now),
            (Some(_), Some(sent)) => sent.checked_add(timing.throttle),
        };
        let reminder = match (&self.heard_down, self.reminded_at, timing.repeat) {
            // A flapping asset is announced once; "still down" would be wrong about it.
            (Some(down), Some(from), Some(repeat)) if !gate.acknowledged && down.event != Event::Flapping => {
                from.checked_add(repeat)
            }
            _ => None,
        };
        deferred.into_iter().chain(reminder).min()
    }

    fn heard(&self, incident: Option<Uuid>) -> bool {
        self.heard_down.as_ref().is_some_and(|down| down.incident_id == incident)
    }
}

/// What a deadline is for: the asset's next tier, or one of its channels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Escalation,
    Channel(String),
}

/// A key of the deadline index: (when, asset id, slot).
type Deadline = (Instant, String, Slot);

/// Puts a channel where its memory now says in the deadline index. Every change to a channel's
/// memory ends with this, so the index always mirrors the memories.
fn rekey(
    deadlines: &mut OrdSet<Deadline>,
    (asset, channel): (&str, &str),
    memory: &mut ChannelMemory,
    (timing, gate): (Timing, Gate),
    now: Instant,
) {
    let due = memory.deadline(timing, gate, now);
    move_key(deadlines, asset, Slot::Channel(channel.to_string()), &mut memory.due, due);
}

fn move_key(
    deadlines: &mut OrdSet<Deadline>,
    asset: &str,
    slot: Slot,
    current: &mut Option<Instant>,
    due: Option<Instant>,
) {
    if due == *current {
        return;
    }
    if let Some(old) = current.take() {
        deadlines.remove(&(old, asset.to_string(), slot.clone()));
    }
    if let Some(new) = due {
        deadlines.insert((new, asset.to_string(), slot));
    }
    *current = due;
}

/// An open incident as the dispatcher follows it.
#[derive(Debug, Clone)]
struct Outage {
    /// The DOWN as decided when it opened, without a tier: each tier's channels get it with theirs.
    down: Notification,
    /// When the incident opened: tiers are due this long after it.
    opened: Instant,
    /// Tiers before this one were notified.
    next_tier: usize,
    acknowledged: bool,
    /// Its key in the deadline index (the next tier), if it has one.
    due: Option<Instant>,
}

impl Outage {
    fn deadline(&self, policy: &AssetPolicy<'_>, held: bool) -> Option<Instant> {
        if held || self.acknowledged {
            return None;
        }
        let (after, _) = policy.tier(self.next_tier)?;
        self.opened.checked_add(after)
    }

    /// The highest tier notified so far.
    fn tier(&self) -> Option<u32> {
        self.next_tier.checked_sub(1).map(|t| u32::try_from(t).unwrap_or(u32::MAX))
    }

    fn rekey(&mut self, deadlines: &mut OrdSet<Deadline>, asset: &str, policy: &AssetPolicy<'_>, held: bool) {
        let due = self.deadline(policy, held);
        move_key(deadlines, asset, Slot::Escalation, &mut self.due, due);
    }
}

/// What the dispatcher remembers of one asset.
#[derive(Debug, Clone, Default)]
struct AssetMemory {
    /// channel name → memory.
    channels: BTreeMap<String, ChannelMemory>,
    /// Its open incident, if it has one.
    outage: Option<Outage>,
    /// Held by a maintenance window: no reminders, no tiers, no held-back DOWNs.
    held: bool,
}

impl AssetMemory {
    fn gate(&self) -> Gate {
        Gate { held: self.held, acknowledged: self.outage.as_ref().is_some_and(|o| o.acknowledged) }
    }

    /// Re-keys every deadline of the asset (after its policy, hold or acknowledgement changed).
    fn rekey_all(&mut self, deadlines: &mut OrdSet<Deadline>, asset: &str, policy: &AssetPolicy<'_>, now: Instant) {
        let gate = self.gate();
        let timing = Timing::of(policy);
        for (channel, memory) in self.channels.iter_mut() {
            rekey(deadlines, (asset, channel), memory, (timing, gate), now);
        }
        if let Some(outage) = self.outage.as_mut() {
            outage.rekey(deadlines, asset, policy, self.held);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dispatcher {
    policy: NotificationPolicy,
    /// Every asset's metadata, for the routes.
    metadata: Arc<AssetsMetadata>,
    /// asset id → the route it is under, for the assets a route matches (the others are under
    /// the top level). Computed when the policy or the metadata change, not per event.
    routes: Arc<std::collections::HashMap<String, usize>>,
    /// asset id → memory.
    memory: HashMap<String, AssetMemory>,
    /// Every deadline, in the order they fall due (then by asset and slot, a stable order for
    /// those due together).
    deadlines: OrdSet<Deadline>,
    /// When each (actor, channel) last heard a PANIC.
    panics: HashMap<(String, String), Instant>,
    /// Tiers reached since [`Dispatcher::take_climbs`] was last called.
    climbs: Vec<Climb>,
}

impl Dispatcher {
    pub fn new(policy: NotificationPolicy) -> Self {
        Dispatcher {
            policy,
            metadata: Arc::default(),
            routes: Arc::default(),
            memory: HashMap::new(),
            deadlines: OrdSet::new(),
            panics: HashMap::new(),
            climbs: Vec::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &NotificationPolicy {
        &self.policy
    }

    /// The policy `asset` is under.
    fn policy_of<'a>(
        policy: &'a NotificationPolicy,
        routes: &std::collections::HashMap<String, usize>,
        asset: &str,
    ) -> AssetPolicy<'a> {
        policy.for_route(routes.get(asset).copied())
    }

    /// A reloaded policy applies from now on; what channels already heard is kept, and so is
    /// the tier each open incident reached. Pending deadlines move to the new numbers (O(n),
    /// once per reload).
    pub fn set_policy(&mut self, policy: NotificationPolicy, now: Instant) {
        if policy == self.policy {
            return;
        }
        self.policy = policy;
        self.reconfigure(now);
    }

    /// The assets' metadata (at start and when a reload changed the assets): picks each asset's
    /// route.
    pub fn set_metadata(&mut self, metadata: Arc<AssetsMetadata>, now: Instant) {
        if metadata == self.metadata {
            return;
        }
        self.metadata = metadata;
        self.reconfigure(now);
    }

    fn reconfigure(&mut self, now: Instant) {
        let routes = if self.policy.routes.is_empty() {
            std::collections::HashMap::new()
        } else {
            self.metadata
                .iter()
                .filter_map(|(asset, metadata)| self.policy.route_of(metadata).map(|route| (asset.clone(), route)))
                .collect()
        };
        self.routes = Arc::new(routes);
        let Dispatcher { policy, routes, memory, deadlines, .. } = self;
        for (asset, entry) in memory.iter_mut() {
            entry.rekey_all(deadlines, asset, &Self::policy_of(policy, routes, asset), now);
        }
    }

    /// The tiers reached since the last call, for the Incidents actor to record.
    pub fn take_climbs(&mut self) -> Vec<Climb> {
        std::mem::take(&mut self.climbs)
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

    /// Restores an outage that was open when statusd stopped, `open_for` after it opened: the
    /// tiers up to `tier` were notified back then, so they are not again, and their channels
    /// are owed its RECOVERY; the tiers after it are due `afterSeconds` after it opened (at
    /// once if that is past), unless it was acknowledged.
    pub fn resume(
        &mut self,
        down: Notification,
        tier: Option<u32>,
        acknowledged: bool,
        open_for: Duration,
        now: Instant,
    ) {
        let Dispatcher { policy, routes, memory, deadlines, .. } = self;
        let policy = Self::policy_of(policy, routes, &down.asset_id);
        let entry = memory.entry(down.asset_id.clone()).or_default();
        let next_tier = tier.map_or(0, |t| usize::try_from(t).unwrap_or(usize::MAX).saturating_add(1));
        for index in 0..next_tier.min(policy.tier_count()) {
            let Some((_, channels)) = policy.tier(index) else { continue };
            for channel in channels {
                let memory = entry.channels.entry(channel.clone()).or_default();
                if !memory.heard(down.incident_id) {
                    memory.heard_down = Some(Notification { tier: u32::try_from(index).ok(), ..down.clone() });
                    memory.reminded_at = Some(now);
                }
            }
        }
        if let Some(old) = entry.outage.take()
            && let Some(at) = old.due
        {
            deadlines.remove(&(at, down.asset_id.clone(), Slot::Escalation));
        }
        let opened = now.checked_sub(open_for).unwrap_or(now);
        entry.outage = Some(Outage { down: down.clone(), opened, next_tier, acknowledged, due: None });
        entry.rekey_all(deadlines, &down.asset_id, &policy, now);
    }

    /// The flap breaker tripped: `flapping` (a FLAPPING about the incident the breaker keeps
    /// open) goes out like a DOWN, by tiers and throttle, and its channels are owed the
    /// RECOVERY; no reminders while the asset flaps (see [`ChannelMemory::deadline`]).
    pub fn flapping(&mut self, flapping: Notification, now: Instant) -> Vec<Delivery> {
        self.down(flapping, now)
    }

    /// An incident opened: tier 0 goes out now (if it is due at once), the others later.
    pub fn down(&mut self, down: Notification, now: Instant) -> Vec<Delivery> {
        let asset = down.asset_id.clone();
        let entry = self.memory.entry(asset.clone()).or_default();
        if let Some(old) = entry.outage.take()
            && let Some(at) = old.due
        {
            self.deadlines.remove(&(at, asset.clone(), Slot::Escalation));
        }
        entry.outage = Some(Outage { down, opened: now, next_tier: 0, acknowledged: false, due: None });
        self.climb(&asset, now)
    }

    /// Notifies every tier of the asset's outage that is due by `now` and not notified yet.
    fn climb(&mut self, asset: &str, now: Instant) -> Vec<Delivery> {
        let Dispatcher { policy, routes, memory, deadlines, climbs, .. } = self;
        let policy = Self::policy_of(policy, routes, asset);
        let timing = Timing::of(&policy);
        let mut deliveries = Vec::new();
        let Some(entry) = memory.get_mut(asset) else { return deliveries };
        let held = entry.held;
        let Some(outage) = entry.outage.as_mut() else { return deliveries };
        let gate = Gate { held, acknowledged: outage.acknowledged };
        while !held && !outage.acknowledged {
            let Some((after, channels)) = policy.tier(outage.next_tier) else { break };
            if outage.opened.checked_add(after).is_none_or(|at| at > now) {
                break;
            }
            let tier = u32::try_from(outage.next_tier).unwrap_or(u32::MAX);
            let down = Notification { tier: Some(tier), ..outage.down.clone() };
            for channel in channels {
                let memory = entry.channels.entry(channel.clone()).or_default();
                let incident = down.incident_id;
                let pending = memory.deferred.as_ref().is_some_and(|d| d.incident_id == incident);
                if memory.heard(incident) || pending {
                    // Paged by an earlier tier already.
                    continue;
                }
                if memory.last_sent.is_some_and(|sent| within(sent, timing.throttle, now)) {
                    memory.deferred = Some(down.clone());
                } else {
                    memory.last_sent = Some(now);
                    memory.heard_down = Some(down.clone());
                    memory.deferred = None;
                    memory.reminded_at = Some(now);
                    deliveries.push(Delivery { channel: channel.clone(), notification: down.clone() });
                }
                rekey(deadlines, (asset, channel), memory, (timing, gate), now);
            }
            if !channels.is_empty() {
                climbs.push(Climb {
                    asset_id: asset.to_string(),
                    incident_id: down.incident_id,
                    tier,
                    channels: channels.to_vec(),
                });
            }
            outage.next_tier += 1;
        }
        outage.rekey(deadlines, asset, &policy, held);
        deliveries
    }

    pub fn recovery(&mut self, recovery: Notification, now: Instant) -> Vec<Delivery> {
        let Dispatcher { policy, routes, memory, deadlines, .. } = self;
        let asset = recovery.asset_id.clone();
        let policy = Self::policy_of(policy, routes, &asset);
        let timing = Timing::of(&policy);
        let entry = memory.entry(asset.clone()).or_default();
        let mut recovery = recovery;
        if let Some(outage) = entry.outage.take() {
            if let Some(at) = outage.due {
                deadlines.remove(&(at, asset.clone(), Slot::Escalation));
            }
            recovery.tier = outage.tier();
        }
        let gate = entry.gate();
        let mut involved: Vec<String> = policy.channels().into_iter().map(str::to_string).collect();
        // Channels the policy no longer names forget the outage too, without a word.
        for (channel, memory) in &entry.channels {
            if (memory.heard_down.is_some() || memory.deferred.is_some()) && !involved.contains(channel) {
                involved.push(channel.clone());
            }
        }
        let mut deliveries = Vec::new();
        for channel in involved {
            let memory = entry.channels.entry(channel.clone()).or_default();
            // Whatever happens below, this outage is over for the channel.
            memory.deferred = None;
            memory.reminded_at = None;
            let heard = memory.heard_down.take().is_some_and(|down| down.incident_id == recovery.incident_id);
            rekey(deadlines, (&asset, &channel), memory, (timing, gate), now);
            if !policy.hears_recovery(&channel) {
                continue;
            }
            let tell = if heard {
                true
            } else if policy.pages(&channel) {
                // It never heard this DOWN (throttled away): a recovery would make no sense.
                false
            } else {
                memory.last_sent.is_none_or(|sent| !within(sent, timing.throttle, now))
            };
            if tell {
                memory.last_sent = Some(now);
                deliveries.push(Delivery { channel, notification: recovery.clone() });
            }
        }
        deliveries
    }

    /// Someone acknowledged the asset's open incident: the channels that heard its DOWN get an
    /// ACK saying `details` (with the tier reached), reminders and tiers stop. Nothing if the
    /// incident is not the asset's open one, or was acknowledged already.
    pub fn ack(
        &mut self,
        asset_id: &str,
        incident_id: Uuid,
        details: String,
        timestamp: DateTime<Utc>,
        now: Instant,
    ) -> Vec<Delivery> {
        let Dispatcher { policy, routes, memory, deadlines, .. } = self;
        let policy = Self::policy_of(policy, routes, asset_id);
        let Some(entry) = memory.get_mut(asset_id) else { return Vec::new() };
        let Some(outage) = entry.outage.as_mut().filter(|o| o.down.incident_id == Some(incident_id)) else {
            return Vec::new();
        };
        if outage.acknowledged {
            return Vec::new();
        }
        outage.acknowledged = true;
        let ack = Notification { event: Event::Ack, timestamp, details, tier: outage.tier(), ..outage.down.clone() };
        let mut deliveries = Vec::new();
        for (channel, memory) in entry.channels.iter_mut() {
            if memory.heard(ack.incident_id) {
                memory.last_sent = Some(now);
                deliveries.push(Delivery { channel: channel.clone(), notification: ack.clone() });
            }
            // Someone is on it: a DOWN held back by the throttle is not needed any more.
            if memory.deferred.as_ref().is_some_and(|d| d.incident_id == ack.incident_id) {
                memory.deferred = None;
            }
        }
        entry.rekey_all(deadlines, asset_id, &policy, now);
        deliveries
    }

    /// Holds an asset's reminders, tiers and held-back DOWNs (while a maintenance window is
    /// active), or releases them: tiers that fell due meanwhile go out at the next wake, and
    /// reminders count from the release.
    pub fn set_held(&mut self, asset_id: &str, held: bool, now: Instant) {
        let Dispatcher { policy, routes, memory, deadlines, .. } = self;
        let policy = Self::policy_of(policy, routes, asset_id);
        let entry = memory.entry(asset_id.to_string()).or_default();
        if entry.held == held {
            return;
        }
        entry.held = held;
        if !held {
            for memory in entry.channels.values_mut().filter(|m| m.heard_down.is_some()) {
                memory.reminded_at = Some(now);
            }
        }
        entry.rekey_all(deadlines, asset_id, &policy, now);
    }

    /// Sends what is due by `now`: tiers, held-back DOWNs whose window ended, and reminders.
    /// Touches only what is due.
    pub fn wake(&mut self, now: Instant, wall_clock: DateTime<Utc>) -> Vec<Delivery> {
        // Taken out first, so that whatever falls due again is left for the next wake.
        let mut due = Vec::new();
        while self.deadlines.get_min().is_some_and(|(at, _, _)| *at <= now) {
            due.extend(self.deadlines.remove_min());
        }
        let mut deliveries = Vec::new();
        for (_, asset, slot) in due {
            let channel = match slot {
                Slot::Escalation => {
                    if let Some(outage) = self.memory.get_mut(&asset).and_then(|entry| entry.outage.as_mut()) {
                        outage.due = None;
                    }
                    deliveries.extend(self.climb(&asset, now));
                    continue;
                }
                Slot::Channel(channel) => channel,
            };
            let Dispatcher { policy, routes, memory, deadlines, .. } = self;
            let timing = Timing::of(&Self::policy_of(policy, routes, &asset));
            let Some(entry) = memory.get_mut(&asset) else { continue };
            let gate = entry.gate();
            let Some(memory) = entry.channels.get_mut(&channel) else { continue };
            memory.due = None;
            let window_over = memory.last_sent.is_none_or(|sent| !within(sent, timing.throttle, now));
            if window_over && let Some(down) = memory.deferred.take() {
                memory.last_sent = Some(now);
                memory.reminded_at = Some(now);
                memory.heard_down = Some(down.clone());
                deliveries.push(Delivery { channel: channel.clone(), notification: down });
            } else if let (Some(from), Some(down), Some(repeat)) =
                (memory.reminded_at, &memory.heard_down, timing.repeat)
                && !gate.acknowledged
                && down.event != Event::Flapping
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
            rekey(deadlines, (&asset, &channel), memory, (timing, gate), now);
        }
        deliveries
    }

    /// When [`Dispatcher::wake`] next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        self.deadlines.get_min().map(|(at, _, _)| *at)
    }

    /// Forgets an asset (it left the config).
    pub fn forget(&mut self, asset_id: &str) {
        let Some(entry) = self.memory.remove(asset_id) else { return };
        for (channel, memory) in entry.channels {
            if let Some(at) = memory.due {
                self.deadlines.remove(&(at, asset_id.to_string(), Slot::Channel(channel)));
            }
        }
        if let Some(at) = entry.outage.and_then(|o| o.due) {
            self.deadlines.remove(&(at, asset_id.to_string(), Slot::Escalation));
        }
    }
}

pub use crate::notify::human_duration;

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
            tier: None,
            since: None,
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
        dispatcher.resume(note(Event::Down, 1), Some(0), false, secs(0), t0);
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

    /// The deadline index holds exactly the channels and outages that have a deadline, under it.
    fn assert_index_mirrors_memory(dispatcher: &Dispatcher, now: Instant) {
        let mut expected = OrdSet::new();
        for (asset, entry) in &dispatcher.memory {
            let policy = Dispatcher::policy_of(&dispatcher.policy, &dispatcher.routes, asset);
            let timing = Timing::of(&policy);
            for (channel, memory) in &entry.channels {
                assert_eq!(memory.due, memory.deadline(timing, entry.gate(), now), "{asset}/{channel}");
                if let Some(at) = memory.due {
                    expected.insert((at, asset.clone(), Slot::Channel(channel.clone())));
                }
            }
            if let Some(outage) = &entry.outage {
                assert_eq!(outage.due, outage.deadline(&policy, entry.held), "{asset}: escalation");
                if let Some(at) = outage.due {
                    expected.insert((at, asset.clone(), Slot::Escalation));
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
        dispatcher.resume(asset("resumed", Event::Down, 5), Some(0), false, secs(0), t0);
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

    fn tier(after_seconds: u64, channels: &[&str]) -> crate::config::notifiers::Tier {
        crate::config::notifiers::Tier { after_seconds, channels: channels.iter().map(|c| c.to_string()).collect() }
    }

    /// Tier 0 (oncall) at once, tier 1 (lead) after 900 s, tier 2 (cto) after 1800 s.
    fn escalating(repeat: Option<u64>) -> NotificationPolicy {
        NotificationPolicy {
            on_down: vec!["ignored".into()],
            on_recovery: vec![],
            escalation: Some(vec![tier(0, &["oncall"]), tier(900, &["lead", "oncall"]), tier(1800, &["cto"])]),
            repeat_alerts: repeat.is_some(),
            repeat_interval_seconds: repeat,
            ..policy(300)
        }
    }

    fn tiers(deliveries: &[Delivery]) -> Vec<(&str, Event, Option<u32>)> {
        deliveries.iter().map(|d| (d.channel.as_str(), d.notification.event, d.notification.tier)).collect()
    }

    #[test]
    fn each_tier_is_notified_once_when_due_and_every_tier_that_heard_hears_the_recovery() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(escalating(None));
        let sent = dispatcher.down(note(Event::Down, 1), t0);
        assert_eq!(tiers(&sent), [("oncall", Event::Down, Some(0))]);
        let climbs = dispatcher.take_climbs();
        assert_eq!((climbs[0].tier, climbs[0].channels.clone()), (0, vec!["oncall".to_string()]));
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(900)));
        assert!(dispatcher.wake(t0 + secs(899), Utc::now()).is_empty());
        // Tier 1: oncall heard already (tier 0), so only the lead is paged.
        let sent = dispatcher.wake(t0 + secs(900), Utc::now());
        assert_eq!(tiers(&sent), [("lead", Event::Down, Some(1))]);
        assert_eq!(dispatcher.take_climbs()[0].tier, 1);
        assert_index_mirrors_memory(&dispatcher, t0 + secs(900));
        // A late wake sends the due tier once; nothing is left after the last tier.
        let sent = dispatcher.wake(t0 + secs(5000), Utc::now());
        assert_eq!(tiers(&sent), [("cto", Event::Down, Some(2))]);
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(10_000), Utc::now()).is_empty());
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(10_001));
        assert_eq!(
            tiers(&sent),
            [
                ("oncall", Event::Recovery, Some(2)),
                ("lead", Event::Recovery, Some(2)),
                ("cto", Event::Recovery, Some(2))
            ]
        );
    }

    #[test]
    fn flapping_goes_out_by_tiers_like_a_down_and_is_never_reminded() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(NotificationPolicy { throttle_seconds: 0, ..escalating(Some(60)) });
        let sent = dispatcher.flapping(note(Event::Flapping, 1), t0);
        assert_eq!(tiers(&sent), [("oncall", Event::Flapping, Some(0))]);
        assert_eq!(dispatcher.take_climbs()[0].tier, 0, "recorded on the incident like a DOWN's tier");
        // The reminder interval passes many times: nothing but the next tier is due.
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(900)));
        assert!(dispatcher.wake(t0 + secs(899), Utc::now()).is_empty());
        let sent = dispatcher.wake(t0 + secs(900), Utc::now());
        assert_eq!(tiers(&sent), [("lead", Event::Flapping, Some(1))]);
        assert_index_mirrors_memory(&dispatcher, t0 + secs(900));
        // Settled up: every channel that heard the FLAPPING hears the RECOVERY.
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(1000));
        assert_eq!(tiers(&sent), [("oncall", Event::Recovery, Some(1)), ("lead", Event::Recovery, Some(1))]);
    }

    #[test]
    fn a_recovery_before_a_tier_is_due_stops_the_escalation() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(escalating(None));
        dispatcher.down(note(Event::Down, 1), t0);
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(60));
        assert_eq!(tiers(&sent), [("oncall", Event::Recovery, Some(0))]);
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(5000), Utc::now()).is_empty());
        assert_index_mirrors_memory(&dispatcher, t0 + secs(5000));
    }

    #[test]
    fn an_ack_tells_those_who_heard_once_and_stops_tiers_and_reminders() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(escalating(Some(600)));
        dispatcher.down(note(Event::Down, 1), t0);
        let sent = dispatcher.wake(t0 + secs(600), Utc::now());
        assert_eq!(tiers(&sent), [("oncall", Event::Reminder, Some(0))]);
        dispatcher.wake(t0 + secs(900), Utc::now());
        let incident = Uuid::from_u128(1);
        let sent = dispatcher.ack("api", incident, "acknowledged by alice: on it".into(), Utc::now(), t0 + secs(1000));
        assert_eq!(tiers(&sent), [("lead", Event::Ack, Some(1)), ("oncall", Event::Ack, Some(1))]);
        assert_eq!(sent[0].notification.details, "acknowledged by alice: on it");
        // Twice, or for another incident: nothing more.
        assert!(dispatcher.ack("api", incident, "again".into(), Utc::now(), t0 + secs(1001)).is_empty());
        assert!(dispatcher.ack("api", Uuid::from_u128(2), "other".into(), Utc::now(), t0 + secs(1001)).is_empty());
        // No tier 2, no reminders, ever.
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(100_000), Utc::now()).is_empty());
        assert_index_mirrors_memory(&dispatcher, t0 + secs(100_000));
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(100_001));
        assert_eq!(sent.len(), 2, "both tiers that heard the DOWN hear its recovery");
    }

    #[test]
    fn a_resumed_outage_sends_no_tier_twice_and_an_acked_one_stays_quiet() {
        // Far enough from the clock's origin that "opened 5000 s ago" is representable.
        let t0 = Instant::now() + secs(100_000);
        let mut dispatcher = Dispatcher::new(escalating(Some(600)));
        // Open for 1500 s when statusd stopped and started again, tiers 0 and 1 notified.
        dispatcher.resume(note(Event::Down, 1), Some(1), false, secs(1500), t0);
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(300)), "tier 2 is due 1800 s after it opened");
        let sent = dispatcher.wake(t0 + secs(300), Utc::now());
        assert_eq!(
            tiers(&sent),
            [("cto", Event::Down, Some(2))],
            "tier 2 once; reminders count from the restart (600 s)"
        );
        let sent = dispatcher.wake(t0 + secs(600), Utc::now());
        assert_eq!(tiers(&sent), [("lead", Event::Reminder, Some(1)), ("oncall", Event::Reminder, Some(0))]);

        // Acknowledged before the restart: nothing at all until the recovery.
        let mut dispatcher = Dispatcher::new(escalating(Some(600)));
        dispatcher.resume(note(Event::Down, 1), Some(0), true, secs(5000), t0);
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(100_000), Utc::now()).is_empty());
        let sent = dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(100_001));
        assert_eq!(tiers(&sent), [("oncall", Event::Recovery, Some(0))]);

        // Overdue tiers not notified before the restart go out at once, each once.
        let mut dispatcher = Dispatcher::new(escalating(None));
        dispatcher.resume(note(Event::Down, 1), Some(0), false, secs(2000), t0);
        assert_eq!(dispatcher.next_wake(), Some(t0 - secs(1100)), "overdue: the next wake is at once");
        let sent = dispatcher.wake(t0, Utc::now());
        assert_eq!(tiers(&sent), [("lead", Event::Down, Some(1)), ("cto", Event::Down, Some(2))]);
    }

    #[test]
    fn without_escalation_on_down_is_tier_0() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(policy(300));
        let sent = dispatcher.down(note(Event::Down, 1), t0);
        assert_eq!(tiers(&sent), [("teams", Event::Down, Some(0)), ("slack", Event::Down, Some(0))]);
        assert_eq!(dispatcher.take_climbs().len(), 1);
        assert_eq!(dispatcher.next_wake(), None);
    }

    #[test]
    fn routes_pick_each_assets_channels_and_timing_by_metadata() {
        let t0 = Instant::now();
        let route: crate::config::notifiers::Route = serde_json::from_value(serde_json::json!({
            "match": {"team": "db", "env": ["prod", "staging"]},
            "onDown": ["dba"], "onRecovery": ["dba"], "repeatAlerts": true, "repeatIntervalSeconds": 60
        }))
        .expect("a route");
        let mut dispatcher = Dispatcher::new(NotificationPolicy { routes: vec![route], ..policy(300) });
        let metadata = |pairs: serde_json::Value| -> Metadata { serde_json::from_value(pairs).expect("metadata") };
        let all: AssetsMetadata = [
            ("db".to_string(), metadata(serde_json::json!({"team": "db", "env": "prod"}))),
            ("db-dev".to_string(), metadata(serde_json::json!({"team": "db", "env": "dev"}))),
            ("web".to_string(), metadata(serde_json::json!({"team": "web"}))),
        ]
        .into_iter()
        .collect();
        dispatcher.set_metadata(Arc::new(all), t0);
        let sent = dispatcher.down(asset("db", Event::Down, 1), t0);
        assert_eq!(channels(&sent), [("dba", Event::Down)]);
        assert_eq!(
            channels(&dispatcher.down(asset("db-dev", Event::Down, 2), t0)),
            [("teams", Event::Down), ("slack", Event::Down)]
        );
        assert_eq!(
            channels(&dispatcher.down(asset("web", Event::Down, 3), t0)),
            [("teams", Event::Down), ("slack", Event::Down)]
        );
        // The route's reminders, the top level's throttle.
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(60)));
        let sent = dispatcher.wake(t0 + secs(60), Utc::now());
        assert_eq!(channels(&sent), [("dba", Event::Reminder)]);

        // A reload that moves the asset out of the route: its DOWN's channel still hears the
        // recovery only if the new policy lists it; reminders follow the new policy.
        dispatcher.set_metadata(Arc::new(AssetsMetadata::new()), t0 + secs(61));
        assert_eq!(dispatcher.next_wake(), None);
        assert_index_mirrors_memory(&dispatcher, t0 + secs(61));
    }

    #[test]
    fn a_held_asset_climbs_no_tier_and_sends_no_reminder_until_released() {
        let t0 = Instant::now();
        let mut dispatcher = Dispatcher::new(escalating(Some(600)));
        dispatcher.down(note(Event::Down, 1), t0);
        dispatcher.set_held("api", true, t0 + secs(100));
        assert_eq!(dispatcher.next_wake(), None);
        assert!(dispatcher.wake(t0 + secs(2000), Utc::now()).is_empty());
        assert_index_mirrors_memory(&dispatcher, t0 + secs(2000));
        // Released: the tiers that fell due go out at once, reminders count from the release.
        dispatcher.set_held("api", false, t0 + secs(2000));
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(900)));
        let sent = dispatcher.wake(t0 + secs(2000), Utc::now());
        assert_eq!(tiers(&sent), [("lead", Event::Down, Some(1)), ("cto", Event::Down, Some(2))]);
        assert_eq!(dispatcher.next_wake(), Some(t0 + secs(2600)));
        let sent = dispatcher.wake(t0 + secs(2600), Utc::now());
        assert!(sent.iter().all(|d| d.notification.event == Event::Reminder) && sent.len() == 3, "{sent:?}");
        // Held again: nothing; the recovery still reaches every tier that heard.
        dispatcher.set_held("api", true, t0 + secs(2601));
        assert!(dispatcher.wake(t0 + secs(9000), Utc::now()).is_empty());
        assert_eq!(dispatcher.recovery(note(Event::Recovery, 1), t0 + secs(9001)).len(), 3);
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
