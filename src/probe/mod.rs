//! Probes: how statusd asks an asset whether it is healthy.
//!
//! Each asset type is one file here with its settings (validated at config load, never at probe
//! time) and its check; [`ProbeSpec`] is the one place where types are looked up. Adding a probe
//! is a new file, a variant below and its arms in the `match`es.

pub mod conditions;
pub mod dns;
pub mod http;
pub mod icmp;
pub mod push;
pub mod tcp;
pub mod tls;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use crate::report::{Bound, Report};
pub use conditions::{Condition, Facts};

/// A week: the longest gap between probes (or pushes) anyone watches with a monitor.
pub const MAX_INTERVAL_SECONDS: u64 = 7 * 24 * 3600;

/// The probe-specific part of an asset, chosen by `assetType`. Its names (serde's tag, and
/// [`AssetType`]'s for lists and lookups) both come from the variants, lower-cased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, strum::EnumDiscriminants)]
#[serde(tag = "assetType", rename_all = "lowercase")]
#[strum_discriminants(
    name(AssetType),
    derive(strum::EnumString, strum::IntoStaticStr, strum::VariantNames),
    strum(serialize_all = "lowercase")
)]
pub enum ProbeSpec {
    Http(http::HttpSpec),
    Tcp(tcp::TcpSpec),
    Dns(dns::DnsSpec),
    Tls(tls::TlsSpec),
    Icmp(icmp::IcmpSpec),
    Push(push::PushSpec),
}

impl ProbeSpec {
    /// Every `assetType`, in the order of the variants.
    pub const ASSET_TYPES: &'static [&'static str] = <AssetType as strum::VariantNames>::VARIANTS;

    /// The `assetType`: `http`, `tcp`, …
    pub fn asset_type(&self) -> &'static str {
        AssetType::from(self).into()
    }

    /// The whole-number settings of an asset type and their ranges, checked on the file's
    /// values before they are parsed (see [`Report::bounds`]); none for an unknown type.
    pub fn bounds(asset_type: &str) -> &'static [Bound] {
        match asset_type.parse() {
            Ok(AssetType::Http) => http::HttpSpec::BOUNDS,
            Ok(AssetType::Tls) => tls::TlsSpec::BOUNDS,
            Ok(AssetType::Push) => push::PushSpec::BOUNDS,
            Ok(AssetType::Tcp | AssetType::Dns | AssetType::Icmp) | Err(_) => &[],
        }
    }

    pub(crate) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        match self {
            ProbeSpec::Http(spec) => spec.validate(address, path, report),
            ProbeSpec::Tcp(spec) => spec.validate(address, path, report),
            ProbeSpec::Dns(spec) => spec.validate(address, path, report),
            ProbeSpec::Tls(spec) => spec.validate(address, path, report),
            ProbeSpec::Icmp(spec) => spec.validate(address, path, report),
            ProbeSpec::Push(spec) => spec.validate(address, path, report),
        }
    }

    /// Probes `address` once, without a deadline: the caller sets one, `timeout`, which the
    /// HTTP probe reads to choose its client (see `http.rs`). `has_conditions`: the asset has
    /// conditions, so the probe must collect what they read (an HTTP body, a TCP banner) even
    /// when nothing else asks for it.
    pub(crate) async fn check(
        &self,
        address: &str,
        has_conditions: bool,
        timeout: std::time::Duration,
        context: &ProbeContext,
    ) -> ProbeOutcome {
        // Each arm's future is boxed: unboxed, this future is as large as the largest probe
        // type's (4.7 KB in a debug build), and a probe task's future is copied whole when it
        // is spawned, when it finishes and when its handle is dropped. Those copies were half
        // of callgrind's instructions per HTTP probe (README "Benchmarks"; fewer in time, as
        // callgrind counts `rep movsb` byte by byte); boxed, a probe allocates and copies only
        // what its own type needs.
        match self {
            ProbeSpec::Http(spec) => Box::pin(spec.check(address, has_conditions, timeout, context)).await,
            ProbeSpec::Tcp(spec) => Box::pin(spec.check(address, has_conditions, context.source)).await,
            ProbeSpec::Dns(spec) => Box::pin(spec.check(address, &context.dns, context.source)).await,
            ProbeSpec::Tls(spec) => Box::pin(spec.check(address, &context.tls, context.source)).await,
            ProbeSpec::Icmp(spec) => Box::pin(spec.check(address, &context.icmp, context.source)).await,
            // A push asset is never probed: its actor waits for pushes (see `push.rs`).
            ProbeSpec::Push(_) => ProbeOutcome::down(None, "push assets are not probed"),
        }
    }
}

/// What probes share: clients are built once, because building one costs more than a probe.
pub struct ProbeContext {
    http: http::Clients,
    dns: dns::Resolvers,
    tls: tls::Trust,
    icmp: icmp::Pingers,
    /// `[probes] source_address`: the local address every probe that sends (HTTP, TCP, TLS, DNS,
    /// ICMP) is sent from.
    source: Option<std::net::IpAddr>,
}

impl ProbeContext {
    pub fn new() -> Result<ProbeContext, reqwest::Error> {
        ProbeContext::sent_from(None)
    }

    /// Probes sent from `source` (`[probes] source_address`), or from where the system picks.
    pub fn sent_from(source: Option<std::net::IpAddr>) -> Result<ProbeContext, reqwest::Error> {
        let tls = tls::Trust::new();
        Ok(ProbeContext {
            http: http::Clients::new(source, &tls)?,
            dns: dns::Resolvers::new(),
            tls,
            icmp: icmp::Pingers::new(),
            source,
        })
    }
}

/// Why a probe sent from `source` (`[probes] source_address`) cannot reach its target: the target
/// has no address of the source's family. One wording for every probe type.
pub(crate) fn no_address_from(source: std::net::IpAddr) -> String {
    let family = if source.is_ipv4() { "IPv4" } else { "IPv6" };
    format!("no {family} address to reach from the source address {source}")
}

/// A probe's verdict, before it is stamped with time and asset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeOutcome {
    pub success: bool,
    /// The protocol's own status code, when it has one (HTTP status).
    pub code: Option<i32>,
    /// Why it failed, short enough for a log line and a notification.
    pub message: Option<String>,
    /// What the probe saw, for `conditions` to judge.
    pub facts: Facts,
    pub detail: ProbeDetail,
}

impl ProbeOutcome {
    pub fn up(code: Option<i32>) -> Self {
        ProbeOutcome { success: true, code, ..ProbeOutcome::default() }
    }

    pub fn down(code: Option<i32>, message: impl Into<String>) -> Self {
        ProbeOutcome { success: false, code, message: Some(message.into()), ..ProbeOutcome::default() }
    }

    pub fn with_facts(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }

    pub fn with_detail(mut self, detail: ProbeDetail) -> Self {
        self.detail = detail;
        self
    }
}

/// What a probe measured beyond its verdict: shown live (`lastProbe` in the API), not stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// When the peer's certificate expires: for TLS the earliest expiry on the path the verifier
    /// accepted (everything the server sent when verification is off or fails); for HTTPS the
    /// server's own certificate.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::rfc3339::serialize_option")]
    pub certificate_expires_at: Option<DateTime<Utc>>,
}

/// Where a probe's time went, per phase, in ms (the phases a probe can observe).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<u64>,
}

/// Milliseconds since `started`, for timings.
pub(crate) fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One stored probe: the row of `probe_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// Made here, not by the database, so that retrying a write can never store a result twice.
    #[serde(skip)]
    pub id: Uuid,
    pub asset_id: String,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    pub success: bool,
    pub latency_ms: i64,
    pub code: Option<i32>,
    pub message: Option<String>,
    /// Set when the result does not count as a plain up or down; stored in `probe_events.mark`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
    #[serde(flatten)]
    pub detail: ProbeDetail,
}

/// Why a result is not a plain up or down. Results marked `maintenance` or `inconclusive` are
/// left out of uptime; `degraded` ones count as up.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Mark {
    /// It passed, but slower than `degradedLatencyMs` or against `degradedConditions`.
    Degraded,
    /// Taken during a maintenance window of the asset.
    Maintenance,
    /// It failed while every `"role": "connectivity"` asset was down: statusd's own network,
    /// not the asset, is the likely cause.
    Inconclusive,
}

impl Mark {
    /// The stored spelling: `degraded`, `maintenance`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl ProbeResult {
    /// A result no probe measured (a push, a missed push, a probe task that panicked): stamped
    /// now, without latency; a failure always has a message.
    pub fn unmeasured(asset_id: &str, success: bool, message: Option<String>) -> ProbeResult {
        let timestamp = Utc::now();
        ProbeResult {
            id: event_id(timestamp),
            asset_id: asset_id.to_string(),
            timestamp,
            success,
            latency_ms: 0,
            code: None,
            message: if success { None } else { Some(message.map_or_else(|| "failed".into(), without_nul)) },
            mark: None,
            detail: ProbeDetail::default(),
        }
    }
}

/// A message as every database can store it: a peer's answer quoted in a message (a body
/// value, a pushed `msg`) may hold NUL characters, which PostgreSQL text refuses, and a refused
/// write would hold back every result batched with it. Each NUL becomes U+FFFD, the usual
/// mark of a character that could not be kept.
pub fn without_nul(message: String) -> String {
    if message.contains('\0') { message.replace('\0', "\u{FFFD}") } else { message }
}

/// A probe result's id: a UUIDv7 of the probe's own timestamp, so that ordering events by id
/// orders them by time (retention and rollups walk the primary key by time ranges).
pub fn event_id(timestamp: DateTime<Utc>) -> Uuid {
    let seconds = u64::try_from(timestamp.timestamp()).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, timestamp.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list of asset types and the names serde reads cannot drift: both come from the variants.
    #[test]
    fn every_asset_type_is_read_by_its_name() {
        for name in ProbeSpec::ASSET_TYPES {
            let spec: ProbeSpec = serde_json::from_value(serde_json::json!({"assetType": name, "token": "t"}))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(spec.asset_type(), *name);
        }
        let unknown = serde_json::from_value::<ProbeSpec>(serde_json::json!({"assetType": "ftp"})).expect_err("ftp");
        let listed = ProbeSpec::ASSET_TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        assert!(unknown.to_string().ends_with(&format!("expected one of {listed}")), "{unknown}");
    }
}
