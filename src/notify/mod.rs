//! Notification channels: what a notification is, how each channel's payload looks, and how a
//! payload is delivered (timeout, retries with backoff, `Retry-After`).
//!
//! A new channel is one file here with its payload (or, for a service with its own API, the
//! [`Request`] it wants), plus one variant in [`ChannelConfig`]. Sending, retrying, rate limits
//! and masking live once, in [`deliver_tries`].

mod discord;
mod email;
mod googlechat;
mod gotify;
mod matrix;
mod mattermost;
mod ntfy;
mod opsgenie;
mod pagerduty;
mod pushover;
mod rocketchat;
mod slack;
mod teams;
mod telegram;
mod template;
mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::redact::Secret;
use crate::report::{Bound, Report};
pub use template::AssetFacts;
use template::{BodyTemplate, Templates};

/// What happened, in the words every channel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    Down,
    /// The asset is up again (or, for `onDegraded` channels, no longer degraded).
    Recovery,
    /// Still down: sent while an incident stays open, when the policy asks for repeats.
    Reminder,
    Panic,
    /// Someone acknowledged the incident (`details` names who): no more reminders or tiers.
    Ack,
    /// The asset changes state too often to report each change: one incident stays open.
    Flapping,
    /// The asset answers, but slower than `degradedLatencyMs` or against `degradedConditions`.
    Degraded,
    /// Every asset with `"role": "connectivity"` is down: statusd has lost its own network.
    NetworkDown,
    /// A connectivity asset is up again after [`Event::NetworkDown`].
    NetworkUp,
    /// A maintenance window began for the asset.
    MaintenanceStart,
    /// A maintenance window of the asset ended.
    MaintenanceEnd,
    /// A test message asked for through `POST /api/notifiers/{name}/test`: about nothing.
    Test,
}

impl Event {
    pub const ALL: [Event; 12] = [
        Event::Down,
        Event::Recovery,
        Event::Reminder,
        Event::Panic,
        Event::Ack,
        Event::Flapping,
        Event::Degraded,
        Event::NetworkDown,
        Event::NetworkUp,
        Event::MaintenanceStart,
        Event::MaintenanceEnd,
        Event::Test,
    ];

    /// The name channels and the API use, as serde writes it: `DOWN`, `NETWORK_DOWN`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Down => "DOWN",
            Event::Recovery => "RECOVERY",
            Event::Reminder => "REMINDER",
            Event::Panic => "PANIC",
            Event::Ack => "ACK",
            Event::Flapping => "FLAPPING",
            Event::Degraded => "DEGRADED",
            Event::NetworkDown => "NETWORK_DOWN",
            Event::NetworkUp => "NETWORK_UP",
            Event::MaintenanceStart => "MAINTENANCE_START",
            Event::MaintenanceEnd => "MAINTENANCE_END",
            Event::Test => "TEST",
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Event::Down | Event::NetworkDown => "🔴",
            Event::Recovery | Event::NetworkUp => "🟢",
            Event::Reminder | Event::Degraded => "🟠",
            Event::Panic => "💥",
            Event::Ack => "👀",
            Event::Flapping => "🔁",
            Event::MaintenanceStart | Event::MaintenanceEnd => "🔧",
            Event::Test => "🧪",
        }
    }

    /// What a paging service (PagerDuty, Opsgenie) does with the event.
    fn page(self) -> Page {
        match self {
            Event::Down | Event::Reminder | Event::Panic | Event::Flapping | Event::Degraded | Event::NetworkDown => {
                Page::Open
            }
            Event::Ack => Page::Acknowledge,
            Event::Recovery | Event::NetworkUp => Page::Close,
            Event::MaintenanceStart | Event::MaintenanceEnd | Event::Test => Page::Note,
        }
    }

    /// Whether the event says something is wrong now (push channels ring louder for these).
    fn is_trouble(self) -> bool {
        matches!(self, Event::Down | Event::Panic | Event::NetworkDown)
    }

    /// RGB colour for channels that colour their cards.
    fn colour(self) -> u32 {
        match self {
            Event::Down | Event::NetworkDown => 0xD92D20,
            Event::Recovery | Event::NetworkUp => 0x12B76A,
            Event::Reminder | Event::Degraded | Event::Flapping => 0xF79009,
            Event::Panic => 0x7A5AF8,
            Event::Ack | Event::MaintenanceStart | Event::MaintenanceEnd | Event::Test => 0x2E90FA,
        }
    }
}

/// One message for people, the same for every channel before formatting. Its JSON is also what
/// the outbox keeps (`notifications.payload`) to send it again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event: Event,
    pub asset_id: String,
    pub asset_name: String,
    pub timestamp: DateTime<Utc>,
    pub details: String,
    pub incident_id: Option<Uuid>,
    /// A storm grouped into one message: the notifications it stands for, one per asset, all
    /// of this event. Empty for a notification about one asset. See [`Notification::grouped`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<Notification>,
    /// The escalation tier: for a DOWN, the tier that paged the channel (0 is `onDown` or the
    /// first tier); for a REMINDER, the DOWN's; for an ACK or a RECOVERY, the highest tier
    /// reached. None for events outside an incident (PANIC).
    pub tier: Option<u32>,
    /// When the incident (or the state this reports) began, for the templates' `duration`; None
    /// where nothing lasts (PANIC, TEST) or for notifications kept before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

impl Notification {
    /// One message for several assets' notifications of the same event (at least one): named
    /// "N assets", stamped with the earliest, its details a list of the names.
    pub fn grouped(event: Event, items: Vec<Notification>) -> Notification {
        let timestamp = items.iter().map(|n| n.timestamp).min().unwrap_or_else(Utc::now);
        let names: Vec<&str> = items.iter().map(|n| n.asset_name.as_str()).collect();
        Notification {
            event,
            asset_id: String::new(),
            asset_name: format!("{} assets", items.len()),
            timestamp,
            details: names.join(", "),
            incident_id: None,
            group: items,
            tier: None,
            since: None,
        }
    }

    /// One line that reads well anywhere: `🔴 Production API - DOWN`.
    fn headline(&self) -> String {
        format!("{} {} - {}", self.event.emoji(), self.asset_name, self.event.as_str())
    }

    /// The lines of a grouped message, one per asset: `Production API: HTTP 500 (incident …)`.
    fn group_lines(&self) -> Vec<String> {
        self.group
            .iter()
            .map(|n| match n.incident_id {
                Some(incident) => format!("{}: {} (incident {incident})", n.asset_name, n.details),
                None => format!("{}: {}", n.asset_name, n.details),
            })
            .collect()
    }

    /// The key a paging service files the alert under, so that the ACK and the RECOVERY reach
    /// the alert the DOWN opened: the incident id; for events outside an incident, one key
    /// shared by NETWORK_DOWN and NETWORK_UP, else the event and the asset.
    fn alert_key(&self) -> String {
        match (self.incident_id, self.event) {
            (Some(incident), _) => incident.to_string(),
            (None, Event::NetworkDown | Event::NetworkUp) => "statusd-network".to_string(),
            (None, event) => format!("statusd-{}-{}", event.as_str(), self.asset_id),
        }
    }

    /// The message as plain text, for the channels without cards: the details, then one line
    /// per fact (asset, incident, tier, time), or one line per asset for a storm.
    fn plain_text(&self) -> String {
        if !self.group.is_empty() {
            return self.group_lines().join("\n");
        }
        let mut lines = vec![self.details.clone(), format!("Asset: {} ({})", self.asset_name, self.asset_id)];
        if let Some(incident) = self.incident_id {
            lines.push(format!("Incident: {incident}"));
        }
        if let Some(tier) = self.tier_text() {
            lines.push(format!("Escalation: {tier}"));
        }
        lines.push(format!("Time: {}", self.timestamp.to_rfc3339()));
        lines.join("\n")
    }

    /// The outbox's key for this notification to `channel`: at most one is decided and sent
    /// per incident, event, channel and tier. A REMINDER's ends with its decision time (unix
    /// seconds): reminders repeat, at least a second apart, so each has its own, and the same
    /// one decided twice shares it (see migrations/*/…_notification_key.sql). None outside an
    /// incident (PANIC, a storm's grouped message, NETWORK_*, DEGRADED, maintenance, TEST):
    /// those are not constrained.
    pub fn outbox_key(&self, channel: &str) -> Option<String> {
        let incident = self.incident_id.filter(|_| self.event != Event::Test)?;
        let tier = self.tier.map_or_else(|| "-".to_string(), |tier| tier.to_string());
        let mut key = format!("{incident}/{}/{channel}/{tier}", self.event.as_str());
        if self.event == Event::Reminder {
            key.push_str(&format!("/{}", self.timestamp.timestamp()));
        }
        Some(key)
    }

    /// `tier 1`, for the channels that show it in their text.
    fn tier_text(&self) -> Option<String> {
        self.tier.map(|tier| format!("tier {tier}"))
    }
}

/// How a paging service treats an event: see [`Event::page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// Open (or, for a REMINDER, refresh) the alert filed under [`Notification::alert_key`].
    Open,
    Acknowledge,
    /// Resolve the alert: the asset is back.
    Close,
    /// News that pages no one: maintenance, a test message.
    Note,
}

/// A configured channel, chosen by `type`. Its names (serde's tag, and [`ChannelType`]'s for
/// lists) both come from the variants, lower-cased.
#[derive(Debug, Clone, PartialEq, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "type", rename_all = "lowercase")]
#[strum_discriminants(
    name(ChannelType),
    derive(strum::IntoStaticStr, strum::VariantNames, strum::EnumIter),
    strum(serialize_all = "lowercase")
)]
pub enum ChannelConfig {
    Teams(Endpoint),
    Slack(Endpoint),
    Discord(Endpoint),
    Webhook(Endpoint),
    Pagerduty(Service<pagerduty::Settings>),
    Opsgenie(Service<opsgenie::Settings>),
    Telegram(Service<telegram::Settings>),
    Ntfy(Service<ntfy::Settings>),
    Gotify(Service<gotify::Settings>),
    Pushover(Service<pushover::Settings>),
    Mattermost(Endpoint),
    Rocketchat(Endpoint),
    Googlechat(Endpoint),
    Matrix(Service<matrix::Settings>),
    Email(email::Email),
}

/// Where and how patiently to post, for the channels that are one webhook URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    #[serde(alias = "url")]
    pub webhook_url: Secret,
    /// Replaces the scheme, host and port of `webhookUrl` (its path is put in front of the
    /// URL's path): a proxy, a self-hosted server, a test receiver. See [`with_base`].
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Whether a storm reaches this channel as one grouped message (when the policy has
    /// `grouping`); unset, channels read by people group and the generic webhook does not.
    #[serde(default)]
    pub group: Option<bool>,
    /// Texts by event, in place of the built-in message (not for `webhook`: see `body`).
    #[serde(default)]
    pub template: Option<Templates>,
    /// `webhook` only: the HTTP method (default POST).
    #[serde(default)]
    pub method: Option<String>,
    /// `webhook` only: headers sent with every request; values are secrets (tokens).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// `webhook` only: the whole body, a template that renders JSON.
    #[serde(default)]
    pub body: Option<BodyTemplate>,
}

/// A channel that is a service's API: its own keys (`settings`), the server to call, and the
/// keys every channel has. Unknown keys are reported at load from [`ChannelType::keys`] (serde
/// cannot deny them through `flatten`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service<S> {
    #[serde(flatten)]
    pub settings: S,
    /// The service's address, for self-hosted servers, regional endpoints and tests
    /// (`https://api.eu.opsgenie.com`); unset, the service's public one
    /// ([`Api::DEFAULT_BASE_URL`]).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub group: Option<bool>,
    /// Texts by event ([`Api::TEMPLATED`] services only; the others report it as unknown).
    #[serde(default)]
    pub template: Option<Templates>,
}

/// A service's side of a [`Service`] channel.
pub trait Api {
    /// The keys of its own, in the order the README lists them.
    const KEYS: &'static [Key];
    /// Its public server; None for self-hosted services (`baseUrl` is then required).
    const DEFAULT_BASE_URL: Option<&'static str>;
    /// Whether storms may reach it grouped (by default, unless `"group": false`): not pagers,
    /// whose alerts are per incident (a storm's one alert would be closed by no RECOVERY).
    const GROUPS: bool = true;
    /// Whether it takes a `template`: services read by people. Not pagers, whose alert fields
    /// are what the service files and deduplicates by.
    const TEMPLATED: bool = true;
    /// The request that tells the service about `notification`, against `base` (no trailing `/`).
    fn request(&self, base: &str, notification: &Notification) -> Request;
    /// `request` with a template's text in place of its built-in text.
    fn with_text(&self, _request: &mut Request, _text: &str) {}
    /// Problems with its settings, reported at `path` (the notifier's).
    fn validate(&self, _path: &str, _report: &mut Report<'_>) {}
}

/// A config key of a channel type, for load-time checks and the README's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// Never logged nor returned (`***`); marked `*` in the README.
    pub secret: bool,
    pub required: bool,
}

impl Key {
    const fn optional(name: &'static str) -> Key {
        Key { name, secret: false, required: false }
    }
    const fn required(name: &'static str) -> Key {
        Key { name, secret: false, required: true }
    }
    const fn secret(name: &'static str) -> Key {
        Key { name, secret: true, required: true }
    }
    const fn optional_secret(name: &'static str) -> Key {
        Key { name, secret: true, required: false }
    }
}

/// Keys every channel has, after its own.
const COMMON_KEYS: [Key; 3] = [Key::optional("timeoutSeconds"), Key::optional("maxAttempts"), Key::optional("group")];
const WEBHOOK_KEYS: &[Key] = &[Key::secret("webhookUrl")];
/// The generic webhook's own keys beside its URL: the request, shaped by the user.
const CUSTOM_REQUEST_KEYS: &[Key] = &[Key::optional("method"), Key::optional_secret("headers"), Key::optional("body")];
const TEMPLATE_KEY: Key = Key::optional("template");

/// What [`deliver_tries`] sends, built per notification.
#[derive(Debug, Clone)]
pub enum Message {
    Http(Request),
    Email(Box<email::Mail>),
}

/// How one try went.
enum Attempt {
    /// Taken; with the pause the channel asked for after it, if any ([`Sent::pause`]).
    Sent(Option<Duration>),
    /// Failed in a way another try may fix: why.
    Retry(String),
    /// Failed for good (or rate limited): no more tries.
    Stop(DeliveryError),
}

/// One HTTP request to a channel, built per notification: [`deliver_tries`] sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: reqwest::Method,
    /// May carry a secret (a webhook's token, Telegram's bot token in the path): never logged.
    pub url: String,
    /// Values may be secrets (`Authorization`): never logged.
    pub headers: Vec<(String, String)>,
    /// Sent as JSON.
    pub body: serde_json::Value,
}

impl Request {
    fn post(url: String, body: serde_json::Value) -> Request {
        Request { method: reqwest::Method::POST, url, headers: Vec::new(), body }
    }

    fn header(mut self, name: &str, value: String) -> Request {
        self.headers.push((name.to_string(), value));
        self
    }
}

pub(crate) fn default_timeout_seconds() -> u64 {
    10
}

pub(crate) fn default_max_attempts() -> u32 {
    DEFAULT_ATTEMPTS
}

impl Endpoint {
    /// A channel slower than a minute is down; waiting longer only holds a delivery slot. Ten
    /// tries back off for about 17 minutes (1 s doubling), past which an alert is stale.
    /// Checked on every channel type (the keys are common).
    pub const BOUNDS: &'static [Bound] = &[Bound::new("timeoutSeconds", 1, 60), Bound::new("maxAttempts", 1, 10)];
}

/// `url` sent to `base` instead: the scheme, host and port of `base`, then its path (without a
/// trailing `/`), then the path and query of `url`. `url` as it is when it does not parse.
fn with_base(url: &str, base: Option<&str>) -> String {
    let (Some(base), Ok(parsed)) = (base, reqwest::Url::parse(url)) else { return url.to_string() };
    format!("{}{}", base.trim_end_matches('/'), &parsed[url::Position::BeforePath..])
}

impl ChannelType {
    /// The keys a channel of this type takes: `baseUrl`, its own, `template` for the types
    /// read by people (the generic webhook has its request keys instead), then [`COMMON_KEYS`].
    pub fn keys(self) -> Vec<Key> {
        let (own, base_url, templated): (&[Key], Key, bool) = match self {
            ChannelType::Pagerduty => service_keys::<pagerduty::Settings>(),
            ChannelType::Opsgenie => service_keys::<opsgenie::Settings>(),
            ChannelType::Telegram => service_keys::<telegram::Settings>(),
            ChannelType::Ntfy => service_keys::<ntfy::Settings>(),
            ChannelType::Gotify => service_keys::<gotify::Settings>(),
            ChannelType::Pushover => service_keys::<pushover::Settings>(),
            ChannelType::Matrix => service_keys::<matrix::Settings>(),
            ChannelType::Email => (email::KEYS, Key::optional_secret("baseUrl"), true),
            ChannelType::Webhook => (WEBHOOK_KEYS, Key::optional("baseUrl"), false),
            // The rest are one webhook URL (an [`Endpoint`]) read by people.
            _ => (WEBHOOK_KEYS, Key::optional("baseUrl"), true),
        };
        let extra: &[Key] = match self {
            ChannelType::Webhook => CUSTOM_REQUEST_KEYS,
            _ if templated => std::slice::from_ref(&TEMPLATE_KEY),
            _ => &[],
        };
        std::iter::once(base_url).chain(own.iter().copied()).chain(extra.iter().copied()).chain(COMMON_KEYS).collect()
    }

    /// Number ranges of its own keys, checked at load like [`Endpoint::BOUNDS`].
    pub fn bounds(self) -> &'static [Bound] {
        match self {
            ChannelType::Gotify => gotify::BOUNDS,
            ChannelType::Email => email::BOUNDS,
            _ => &[],
        }
    }

    /// Whether the type is a [`Service`]: its settings are flattened, so its unknown keys are
    /// checked from [`ChannelType::keys`] rather than by serde.
    pub fn is_service(self) -> bool {
        !matches!(
            self,
            ChannelType::Teams
                | ChannelType::Slack
                | ChannelType::Discord
                | ChannelType::Webhook
                | ChannelType::Mattermost
                | ChannelType::Rocketchat
                | ChannelType::Googlechat
                | ChannelType::Email
        )
    }
}

fn service_keys<S: Api>() -> (&'static [Key], Key, bool) {
    let base_url = if S::DEFAULT_BASE_URL.is_some() { Key::optional("baseUrl") } else { Key::required("baseUrl") };
    (S::KEYS, base_url, S::TEMPLATED)
}

impl<S: Api> ServiceChannel for Service<S> {
    fn timeout_seconds(&self) -> u64 {
        self.timeout_seconds
    }

    fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    fn groups(&self) -> bool {
        self.group.unwrap_or(S::GROUPS)
    }

    fn template(&self) -> Option<&Templates> {
        self.template.as_ref()
    }

    fn request(&self, notification: &Notification, text: Option<&str>) -> Request {
        let base = self.base_url.as_deref().or(S::DEFAULT_BASE_URL).unwrap_or_default().trim_end_matches('/');
        let mut request = self.settings.request(base, notification);
        if let Some(text) = text {
            self.settings.with_text(&mut request, text);
        }
        request
    }

    fn validate(&self, path: &str, report: &mut Report<'_>) {
        match &self.base_url {
            // Shown masked: a base URL may carry credentials (`https://user:pass@host`).
            Some(url) => check_http_url(url, &format!("{path}.baseUrl"), Some(&crate::redact::url(url)), report),
            None if S::DEFAULT_BASE_URL.is_none() => {
                report.problem(format!("{path}.baseUrl"), "missing: the address of your server is required")
            }
            None => {}
        }
        if self.group == Some(true) && !S::GROUPS {
            report.problem(format!("{path}.group"), "cannot be true here: alerts are one per incident");
        }
        if let Some(template) = &self.template {
            template.validate(&format!("{path}.template"), false, report);
        }
        self.settings.validate(path, report);
    }
}

/// Reports `raw` at `path` unless it is an http or https URL; `shown` is how to quote it (None
/// for a secret, never quoted).
fn check_http_url(raw: &str, path: &str, shown: Option<&str>, report: &mut Report<'_>) {
    let quoted = shown.map(|s| format!(" {s:?}")).unwrap_or_default();
    match reqwest::Url::parse(raw) {
        Err(e) => report.problem(path, format!("{quoted} is not a valid URL ({e})").trim_start().to_string()),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            report.problem(path, format!("scheme {:?} is not http or https", url.scheme()))
        }
        Ok(_) => {}
    }
}

/// How a webhook-URL channel formats a notification: its payload, and the payload around a
/// template's text with the escaping values get inside it (None: the type takes no template).
type Payload = fn(&Notification) -> serde_json::Value;
type TextPayload = (fn(&Notification, &str) -> serde_json::Value, fn(&str) -> String);

fn unescaped(text: &str) -> String {
    text.to_string()
}

impl ChannelConfig {
    /// Every channel `type`, in the order of the variants.
    pub const TYPES: &'static [&'static str] = <ChannelType as strum::VariantNames>::VARIANTS;

    /// The channel's `type`: `teams`, `slack`, …
    pub fn kind(&self) -> &'static str {
        ChannelType::from(self).into()
    }

    /// The channel as one of the three shapes channels come in, for what they all do alike.
    fn shape(&self) -> Shape<'_> {
        match self {
            ChannelConfig::Teams(e) => Shape::Webhook(e, teams::payload, Some((teams::text, unescaped))),
            ChannelConfig::Slack(e) => Shape::Webhook(e, slack::payload, Some((slack::text, slack::escape))),
            ChannelConfig::Discord(e) => Shape::Webhook(e, discord::payload, Some((discord::text, unescaped))),
            ChannelConfig::Webhook(e) => Shape::Webhook(e, webhook::payload, None),
            ChannelConfig::Mattermost(e) => Shape::Webhook(e, mattermost::payload, Some((mattermost::text, unescaped))),
            ChannelConfig::Rocketchat(e) => Shape::Webhook(e, rocketchat::payload, Some((rocketchat::text, unescaped))),
            ChannelConfig::Googlechat(e) => Shape::Webhook(e, googlechat::payload, Some((googlechat::text, unescaped))),
            ChannelConfig::Pagerduty(s) => Shape::Service(s),
            ChannelConfig::Opsgenie(s) => Shape::Service(s),
            ChannelConfig::Telegram(s) => Shape::Service(s),
            ChannelConfig::Ntfy(s) => Shape::Service(s),
            ChannelConfig::Gotify(s) => Shape::Service(s),
            ChannelConfig::Pushover(s) => Shape::Service(s),
            ChannelConfig::Matrix(s) => Shape::Service(s),
            ChannelConfig::Email(e) => Shape::Email(e),
        }
    }

    /// Whether storms reach this channel grouped: its `group` key, else yes for channels read
    /// by people and no for the generic webhook (scripts expect one payload per incident) and
    /// pagers (one alert per incident).
    pub fn groups(&self) -> bool {
        match self.shape() {
            Shape::Webhook(e, _, _) => e.group.unwrap_or(!matches!(self, ChannelConfig::Webhook(_))),
            Shape::Service(s) => s.groups(),
            Shape::Email(e) => e.group.unwrap_or(true),
        }
    }

    /// How long to wait for the channel's answer.
    fn timeout(&self) -> Duration {
        Duration::from_secs(match self.shape() {
            Shape::Webhook(e, _, _) => e.timeout_seconds,
            Shape::Service(s) => s.timeout_seconds(),
            Shape::Email(e) => e.timeout_seconds,
        })
    }

    /// Tries per notification, the first included (`maxAttempts`), against failures that are
    /// not rate limits; then it is `failed`.
    pub fn max_attempts(&self) -> u32 {
        match self.shape() {
            Shape::Webhook(e, _, _) => e.max_attempts,
            Shape::Service(s) => s.max_attempts(),
            Shape::Email(e) => e.max_attempts,
        }
        .max(1)
    }

    /// What carries `notification` to this channel: an HTTP request, or a mail; the text or
    /// body from the channel's template when it has one for the event. A template that fails
    /// to render leaves the built-in message, and its error comes back beside it, for the
    /// caller to count and log: a notification is never dropped for its template.
    pub fn message(&self, notification: &Notification, asset: Option<&AssetFacts>) -> (Message, Option<String>) {
        match self.shape() {
            Shape::Webhook(e, payload, text) => {
                let url = with_base(e.webhook_url.expose(), e.base_url.as_deref());
                let (body, error) = match (&e.body, &e.template, text) {
                    (Some(body), _, _) => match body.render(notification, asset) {
                        Ok(body) => (body, None),
                        Err(error) => (payload(notification), Some(error)),
                    },
                    (None, Some(template), Some((text, escape))) => {
                        match template.render(notification, asset, escape) {
                            Ok(Some(rendered)) => (text(notification, &rendered.body), None),
                            Ok(None) => (payload(notification), None),
                            Err(error) => (payload(notification), Some(error)),
                        }
                    }
                    _ => (payload(notification), None),
                };
                let method = e.method.as_deref().and_then(|m| m.parse().ok()).unwrap_or(reqwest::Method::POST);
                let headers =
                    e.headers.iter().map(|(name, value)| (name.clone(), value.expose().to_string())).collect();
                (Message::Http(Request { method, url, headers, body }), error)
            }
            Shape::Service(s) => {
                let (text, error) = match s.template().map(|t| t.render(notification, asset, unescaped)) {
                    Some(Ok(rendered)) => (rendered.map(|r| r.body), None),
                    Some(Err(error)) => (None, Some(error)),
                    None => (None, None),
                };
                (Message::Http(s.request(notification, text.as_deref())), error)
            }
            Shape::Email(e) => {
                let (rendered, error) = match e.template.as_ref().map(|t| t.render(notification, asset, unescaped)) {
                    Some(Ok(rendered)) => (rendered, None),
                    Some(Err(error)) => (None, Some(error)),
                    None => (None, None),
                };
                (Message::Email(Box::new(e.mail(notification, rendered.as_ref()))), error)
            }
        }
    }

    pub(crate) fn validate(&self, path: &str, report: &mut Report<'_>) {
        match self.shape() {
            Shape::Webhook(e, _, text) => {
                // The URL is a secret (it carries the channel's token), so problems never quote it.
                check_http_url(e.webhook_url.expose(), &format!("{path}.webhookUrl"), None, report);
                if let Some(base) = &e.base_url {
                    check_http_url(base, &format!("{path}.baseUrl"), Some(&crate::redact::url(base)), report);
                }
                match (&e.template, text) {
                    (Some(template), Some(_)) => template.validate(&format!("{path}.template"), false, report),
                    (Some(_), None) => {
                        report.problem(format!("{path}.template"), "not for the generic webhook: set `body`")
                    }
                    (None, _) => {}
                }
                let custom = e.method.is_some() || !e.headers.is_empty() || e.body.is_some();
                if custom && !matches!(self, ChannelConfig::Webhook(_)) {
                    report.problem(path, "`method`, `headers` and `body` are for the generic webhook only");
                }
                if let Some(method) = &e.method
                    && !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE")
                {
                    report.problem(
                        format!("{path}.method"),
                        format!("{method:?} is not GET, POST, PUT, PATCH or DELETE"),
                    );
                }
                for name in e.headers.keys() {
                    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        report.problem(format!("{path}.headers"), format!("{name:?} is not a header name"));
                    }
                }
                if let Some(body) = &e.body {
                    body.validate(&format!("{path}.body"), report);
                }
            }
            Shape::Service(s) => s.validate(path, report),
            Shape::Email(e) => e.validate(path, report),
        }
    }
}

/// See [`ChannelConfig::shape`].
enum Shape<'a> {
    /// A webhook URL, and the payload its service wants.
    Webhook(&'a Endpoint, Payload, Option<TextPayload>),
    Service(&'a dyn ServiceChannel),
    Email(&'a email::Email),
}

/// A [`Service`] of any [`Api`], as [`Shape`] holds it.
trait ServiceChannel {
    fn timeout_seconds(&self) -> u64;
    fn max_attempts(&self) -> u32;
    fn groups(&self) -> bool;
    fn template(&self) -> Option<&Templates>;
    /// The request, with `text` (a template's) in place of the built-in text if given.
    fn request(&self, notification: &Notification, text: Option<&str>) -> Request;
    fn validate(&self, path: &str, report: &mut Report<'_>);
}

/// How a delivery ended when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The channel answered with a status that retrying will not fix (a bad URL, a bad payload).
    #[error("rejected with HTTP {status}")]
    Rejected { status: StatusCode },
    /// A mail server refused for good (a 5xx reply: unknown recipient, refused credentials).
    #[error("refused: {reason}")]
    Refused { reason: String },
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    /// The channel asked to be left alone for `wait` (429, or 503 with `Retry-After`): not a
    /// failed attempt; the same notification goes out once the wait is over.
    #[error("rate limited with HTTP {status}: asked to wait {}s", wait.as_secs_f64())]
    RateLimited { status: StatusCode, wait: Duration },
}

/// A delivery that went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub attempts: u32,
    /// The channel said its budget is spent (Discord's `X-RateLimit-Remaining: 0`): nothing more
    /// may be posted for this long (`X-RateLimit-Reset-After`).
    pub pause: Option<Duration>,
}

/// The message for `notification` on the channel named `name`, from its template when it has
/// one for the event. A template that fails to render is counted
/// (`statusd_notification_template_errors_total{channel}`) and logged, and the built-in message
/// goes out in its place: a notification is never dropped for its template.
pub fn message_for(
    name: &str,
    channel: &ChannelConfig,
    notification: &Notification,
    asset: Option<&AssetFacts>,
) -> Message {
    let (message, error) = channel.message(notification, asset);
    if let Some(error) = error {
        metrics::counter!(crate::telemetry::names::NOTIFICATION_TEMPLATE_ERRORS_TOTAL, "channel" => name.to_string())
            .increment(1);
        tracing::warn!(
            channel = %name, asset_id = %notification.asset_id, event = notification.event.as_str(), %error,
            "the template failed to render: the built-in message is sent instead"
        );
    }
    message
}

/// Tries per notification, the first included, against failures that are not rate limits,
/// unless the channel sets `maxAttempts`.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// Waits between tries: 1 s, then 2 s, 4 s…, each ±20 % so that channels failing together do
/// not retry in lockstep; capped at a minute (`maxAttempts` up to 10 would otherwise wait
/// minutes between the last tries).
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(0.2);
/// Waits a channel asks for are honoured up to this: far above what services ask (Slack and
/// Discord ask for seconds), short enough that a bogus header cannot silence a channel for good.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);
/// A 429 without a wait the channel names: try again after this.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// Sends a message to its channel (built by [`ChannelConfig::message`]) with up to `tries`
/// tries (at least one), retrying transient failures (timeouts, connection errors, 5xx, 408)
/// with exponential backoff. A rate limit ends the call at once with the wait the channel
/// asked for, for the caller to pause the whole channel: a rate limit is per webhook, not per
/// message. A notification uses the channel's [`ChannelConfig::max_attempts`]; a test message
/// one try: it answers at once, it does not retry for the asker to wait.
pub async fn deliver(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    message: &Message,
    tries: u32,
) -> Result<Sent, DeliveryError> {
    let tries = tries.max(1);
    let timeout = channel.timeout();
    let mut backoff = BACKOFF;
    let mut last = String::new();
    for attempt in 1..=tries {
        let outcome = match message {
            Message::Http(request) => send_http(client, request, timeout).await,
            Message::Email(mail) => mail.send(timeout).await,
        };
        match outcome {
            Attempt::Sent(pause) => return Ok(Sent { attempts: attempt, pause }),
            Attempt::Stop(error) => return Err(error),
            Attempt::Retry(why) => last = why,
        }
        if attempt < tries {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    Err(DeliveryError::GaveUp { attempts: tries, last })
}

/// One try of an HTTP request: 2xx is sent; 5xx, 408 and transport errors may be retried; a
/// rate limit or another status stops.
async fn send_http(client: &reqwest::Client, request: &Request, timeout: Duration) -> Attempt {
    let mut builder = client.request(request.method.clone(), &request.url).timeout(timeout).json(&request.body);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value);
    }
    match builder.send().await {
        Ok(response) if response.status().is_success() => Attempt::Sent(budget_spent(response.headers())),
        Ok(response) => {
            let status = response.status();
            if let Some(wait) = rate_limit(status, response.headers()) {
                let named = retry_after(response.headers()).or(reset_after(response.headers())).is_some();
                let wait = match (named, status) {
                    // Telegram and Matrix name the wait in the body only.
                    (false, StatusCode::TOO_MANY_REQUESTS) => match response.json::<serde_json::Value>().await {
                        Ok(body) => body_wait(&body).map_or(wait, |asked| asked.min(MAX_RATE_LIMIT_WAIT)),
                        Err(_) => wait,
                    },
                    _ => wait,
                };
                return Attempt::Stop(DeliveryError::RateLimited { status, wait });
            }
            if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                Attempt::Retry(format!("HTTP {status}"))
            } else {
                Attempt::Stop(DeliveryError::Rejected { status })
            }
        }
        // Without the URL: it may hold a secret, and this message ends up in logs.
        Err(e) => Attempt::Retry(crate::http_error::describe_reqwest_error(&e.without_url())),
    }
}

/// The wait a refusal asks for, if it is a rate limit: any 429, and a 503 that names a
/// `Retry-After` (a service asking for a pause, RFC 9110 section 10.2.3). The longest of
/// `Retry-After` and Discord's `X-RateLimit-Reset-After` is honoured, never less
/// (<https://discord.com/developers/docs/topics/rate-limits>).
fn rate_limit(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let asked = [retry_after(headers), reset_after(headers)].into_iter().flatten().max();
    match status {
        StatusCode::TOO_MANY_REQUESTS => Some(asked.unwrap_or(DEFAULT_RATE_LIMIT_WAIT).min(MAX_RATE_LIMIT_WAIT)),
        StatusCode::SERVICE_UNAVAILABLE => asked.map(|wait| wait.min(MAX_RATE_LIMIT_WAIT)),
        _ => None,
    }
}

/// A 429's wait named in its JSON body: Telegram's `parameters.retry_after` (seconds,
/// <https://core.telegram.org/bots/api#responseparameters>) or Matrix's `retry_after_ms`
/// (<https://spec.matrix.org/v1.11/client-server-api/#rate-limiting>).
fn body_wait(body: &serde_json::Value) -> Option<Duration> {
    if let Some(seconds) = body["parameters"]["retry_after"].as_f64() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    body["retry_after_ms"].as_u64().map(Duration::from_millis)
}

/// After a success: Discord's `X-RateLimit-Remaining: 0` says the next post would be refused
/// until `X-RateLimit-Reset-After` seconds have passed.
fn budget_spent(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let remaining = headers.get("x-ratelimit-remaining")?.to_str().ok()?.trim().parse::<f64>().ok()?;
    if remaining > 0.0 {
        return None;
    }
    reset_after(headers).map(|wait| wait.min(MAX_RATE_LIMIT_WAIT))
}

/// `Retry-After`: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    (at - Utc::now()).to_std().ok()
}

/// Discord's `X-RateLimit-Reset-After`: seconds, with decimals.
fn reset_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get("x-ratelimit-reset-after")?.to_str().ok()?.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The legacy Slack message attachment Mattermost and Rocket.Chat both read: a bar in the
/// event's colour, a title, the details (or one line per asset of a storm) and short fields.
fn slack_attachment(notification: &Notification) -> serde_json::Value {
    let field = |title: &str, value: String| serde_json::json!({"short": true, "title": title, "value": value});
    let mut fields = Vec::new();
    if notification.group.is_empty() {
        fields.push(field("Service", notification.asset_name.clone()));
        fields.push(field("Status", notification.event.as_str().to_string()));
        if let Some(incident) = notification.incident_id {
            fields.push(field("Incident", incident.to_string()));
        }
        if let Some(tier) = notification.tier_text() {
            fields.push(field("Escalation", tier));
        }
    }
    let text = if notification.group.is_empty() {
        notification.details.clone()
    } else {
        notification.group_lines().join("\n")
    };
    serde_json::json!({
        "fallback": notification.headline(),
        "color": format!("#{:06X}", notification.event.colour()),
        "title": notification.headline(),
        "text": truncate(&text, 4000),
        "fields": fields,
    })
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

/// Characters a URL path segment keeps as they are (RFC 3986's unreserved ones).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` as one URL path segment: an alias or a room id with `/`, `!` or `:` stays one.
fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

/// Text for an HTML body (Matrix, email, Google Chat cards): a probe's message stays text.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Shortens text to at most `max` characters, marking the cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
pub(crate) fn sample(event: Event) -> Notification {
    Notification {
        event,
        asset_id: "api-prod".into(),
        asset_name: "Production API".into(),
        timestamp: DateTime::parse_from_rfc3339("2026-11-21T10:30:00Z").expect("a valid timestamp").with_timezone(&Utc),
        details: "HTTP 500 (expected 200)".into(),
        incident_id: Some(Uuid::nil()),
        group: Vec::new(),
        tier: None,
        since: None,
    }
}

/// A storm of `n` DOWNs grouped into one notification, for the channels' tests.
#[cfg(test)]
pub(crate) fn sample_group(n: usize) -> Notification {
    let items = (0..n)
        .map(|i| Notification {
            asset_id: format!("api-{i}"),
            asset_name: format!("API {i}"),
            incident_id: Some(Uuid::from_u128(i as u128 + 1)),
            ..sample(Event::Down)
        })
        .collect();
    Notification::grouped(Event::Down, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> reqwest::header::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (reqwest::header::HeaderName::from_static(name), value.parse().expect("value")))
            .collect()
    }

    #[test]
    fn rate_limits_are_read_as_services_send_them() {
        let too_many = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(rate_limit(too_many, &headers(&[("retry-after", "42")])), Some(Duration::from_secs(42)));
        assert_eq!(rate_limit(too_many, &headers(&[("retry-after", "1.5")])), Some(Duration::from_millis(1500)));
        // Discord: the longer of the two.
        let discord = headers(&[("retry-after", "1"), ("x-ratelimit-reset-after", "2.25")]);
        assert_eq!(rate_limit(too_many, &discord), Some(Duration::from_millis(2250)));
        assert_eq!(rate_limit(too_many, &headers(&[])), Some(DEFAULT_RATE_LIMIT_WAIT));
        assert_eq!(rate_limit(too_many, &headers(&[("retry-after", "86400")])), Some(MAX_RATE_LIMIT_WAIT));
        let date = (Utc::now() + chrono::TimeDelta::seconds(120)).to_rfc2822();
        let wait = rate_limit(too_many, &headers(&[("retry-after", &date)])).expect("a wait");
        assert!((Duration::from_secs(118)..=Duration::from_secs(120)).contains(&wait), "{wait:?}");
        // A 503 is a rate limit only when it names a wait.
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(rate_limit(unavailable, &headers(&[("retry-after", "5")])), Some(Duration::from_secs(5)));
        assert_eq!(rate_limit(unavailable, &headers(&[])), None);
        assert_eq!(rate_limit(StatusCode::INTERNAL_SERVER_ERROR, &headers(&[("retry-after", "5")])), None);
        // After a success: a spent budget pauses the channel.
        let spent = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "0.5")]);
        assert_eq!(budget_spent(&spent), Some(Duration::from_millis(500)));
        let left = headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset-after", "0.5")]);
        assert_eq!(budget_spent(&left), None);
    }

    /// A config of `kind` with its required keys, as a user writes it.
    fn minimal(kind: ChannelType) -> serde_json::Value {
        let mut config = serde_json::json!({"type": <&str>::from(kind)});
        for key in kind.keys().iter().filter(|key| key.required) {
            config[key.name] = match key.name {
                "webhookUrl" | "baseUrl" => "https://hooks.example.com/x".into(),
                "roomId" => "!room:example.org".into(),
                "chatId" => (-100).into(),
                "to" => serde_json::json!(["ops@example.com"]),
                "from" => "statusd@example.com".into(),
                _ => "alerts".into(),
            };
        }
        config
    }

    #[test]
    fn waits_named_in_a_body_are_read() {
        let telegram = serde_json::json!({"ok": false, "error_code": 429, "parameters": {"retry_after": 7}});
        assert_eq!(body_wait(&telegram), Some(Duration::from_secs(7)));
        let matrix = serde_json::json!({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500});
        assert_eq!(body_wait(&matrix), Some(Duration::from_millis(2500)));
        assert_eq!(body_wait(&serde_json::json!({"error": "slow down"})), None);
    }

    /// The list of channel types and the names serde reads cannot drift: both come from the
    /// variants; and each type's key list is what it reads.
    #[test]
    fn every_channel_type_is_read_by_its_name() {
        use strum::IntoEnumIterator;
        for kind in ChannelType::iter() {
            let config = minimal(kind);
            let channel: ChannelConfig =
                serde_json::from_value(config.clone()).unwrap_or_else(|e| panic!("{config}: {e}"));
            assert_eq!(channel.kind(), <&str>::from(kind));
            assert_eq!(ChannelConfig::TYPES.iter().position(|t| *t == channel.kind()), Some(kind as usize));
            // Every required key is required: without it, serde refuses the config.
            for key in kind.keys().iter().filter(|key| key.required && key.name != "baseUrl") {
                let mut without = config.clone();
                without.as_object_mut().map(|o| o.remove(key.name));
                assert!(serde_json::from_value::<ChannelConfig>(without).is_err(), "{kind:?} without {}", key.name);
            }
        }
        let unknown = serde_json::from_value::<ChannelConfig>(serde_json::json!({"type": "pager"})).expect_err("pager");
        let listed = ChannelConfig::TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        assert!(unknown.to_string().ends_with(&format!("expected one of {listed}")), "{unknown}");
    }

    /// The README's table of channel types, as the code lists them.
    fn channel_table() -> String {
        use strum::IntoEnumIterator;
        let mut table = String::from("| type | keys (**bold**: required; \\*: secret) |\n|---|---|\n");
        for kind in ChannelType::iter() {
            let keys: Vec<String> = kind
                .keys()
                .iter()
                .map(|key| {
                    let name = if key.required { format!("**`{}`**", key.name) } else { format!("`{}`", key.name) };
                    if key.secret { format!("{name}\\*") } else { name }
                })
                .collect();
            table.push_str(&format!("| `{}` | {} |\n", <&str>::from(kind), keys.join(", ")));
        }
        table
    }

    #[test]
    fn the_readme_lists_every_channel_type_with_its_keys() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
        let table = channel_table();
        assert!(readme.contains(&table), "README.md must contain this table, as the code has it:\n{table}");
    }

    #[test]
    fn secrets_never_show_in_a_channel_debug_or_serialization() {
        use strum::IntoEnumIterator;
        for kind in ChannelType::iter() {
            let mut config = minimal(kind);
            for key in kind.keys().iter().filter(|key| key.secret) {
                config[key.name] = match key.name {
                    "headers" => serde_json::json!({"Authorization": "Bearer S3CRET"}),
                    _ => "https://hooks.example.com/S3CRET".into(),
                };
            }
            let channel: ChannelConfig = serde_json::from_value(config).expect("parses");
            assert!(!format!("{channel:?}").contains("S3CRET"), "{kind:?}");
        }
    }

    #[test]
    fn a_base_url_takes_the_place_of_the_scheme_host_and_port_and_keeps_the_path() {
        let hook = "https://chat.googleapis.com/v1/spaces/X/messages?key=K&token=T";
        assert_eq!(with_base(hook, None), hook);
        assert_eq!(
            with_base(hook, Some("http://127.0.0.1:8065/")),
            "http://127.0.0.1:8065/v1/spaces/X/messages?key=K&token=T"
        );
        assert_eq!(
            with_base("https://mm.example.com/hooks/abc", Some("https://proxy.internal/mattermost")),
            "https://proxy.internal/mattermost/hooks/abc"
        );
    }

    #[test]
    fn max_attempts_default_to_three_and_are_read_on_every_shape() {
        let read = |config: serde_json::Value| serde_json::from_value::<ChannelConfig>(config).expect("a channel");
        assert_eq!(read(serde_json::json!({"type": "slack", "webhookUrl": "https://h/x"})).max_attempts(), 3);
        let tg = serde_json::json!({"type": "telegram", "botToken": "1:T", "chatId": 1, "maxAttempts": 7});
        assert_eq!(read(tg).max_attempts(), 7);
        let mail =
            serde_json::json!({"type": "email", "host": "h", "from": "a@b.c", "to": ["d@e.f"], "maxAttempts": 1});
        assert_eq!(read(mail).max_attempts(), 1);
    }

    #[test]
    fn truncation_keeps_short_text_and_marks_long_text() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
