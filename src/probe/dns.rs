//! DNS probe: ask for one record of the address (a host name) and judge the response code and
//! the answers. Healthy when the response code is `expectedRcode` (NOERROR unless told) and the
//! answers include every one of `expectedValues`.
//!
//! The name is always queried as written, fully qualified: a monitor that silently tried the
//! search domains of `/etc/resolv.conf` would report on a name nobody asked about. The hosts
//! file is never consulted either, and nothing is cached, so every probe asks the server. Only
//! the names RFC 6761 reserves (`localhost`, `*.invalid`) are answered by the resolver itself.
//!
//! How `expectedValues` compare with the answers (of the queried type only; CNAMEs followed on
//! the way to an A answer are not answers):
//! - A, AAAA: as addresses (`::1` matches `0:0::1`);
//! - CNAME, NS: as names, case-insensitively, a trailing dot ignored;
//! - MX: `"10 mail.example.com"` matches preference and exchange, `"mail.example.com"` the
//!   exchange whatever its preference;
//! - SOA: the whole record (`"mname rname serial refresh retry expire minimum"`) or the mname;
//! - TXT: the record's strings joined without separator (as SPF and DKIM read them), exactly.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::system_conf::read_system_conf;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strum::{IntoEnumIterator, VariantNames};

use super::{Facts, ProbeOutcome};
use crate::report::Report;

const DEFAULT_PORT: u16 = 53;

/// The resolver's own deadline. The probe's timeout (which `probe::run` enforces) is what
/// normally ends a silent query; this only has to outlast any sensible probe timeout, as one
/// resolver serves every asset that names the same server, whatever their timeouts.
const RESOLVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest answer list quoted in a failure message: a message is a log line, not a zone dump.
const MAX_SHOWN_ANSWERS_CHARS: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsSpec {
    #[serde(default)]
    pub record_type: DnsRecordType,
    /// `ip`, `ip:port` or `[ipv6]:port`, optionally prefixed with `udp://` (the default) or
    /// `tcp://`; the system's resolvers when absent.
    #[serde(default)]
    pub nameserver: Option<String>,
    #[serde(default)]
    pub expected_rcode: Rcode,
    /// Each must be among the answers (see the module comment for how they compare).
    #[serde(default)]
    pub expected_values: Vec<String>,
}

/// The record types a DNS asset can ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecordType {
    #[default]
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
    Soa,
    /// Any other text, kept so that `validate` reports it under its own path: serde's error
    /// would lose the path inside the flattened probe settings.
    #[serde(untagged)]
    Unknown(String),
}

const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA"];

impl DnsRecordType {
    fn record_type(&self) -> Option<RecordType> {
        match self {
            DnsRecordType::A => Some(RecordType::A),
            DnsRecordType::Aaaa => Some(RecordType::AAAA),
            DnsRecordType::Cname => Some(RecordType::CNAME),
            DnsRecordType::Mx => Some(RecordType::MX),
            DnsRecordType::Txt => Some(RecordType::TXT),
            DnsRecordType::Ns => Some(RecordType::NS),
            DnsRecordType::Soa => Some(RecordType::SOA),
            DnsRecordType::Unknown(_) => None,
        }
    }
}

/// `expectedRcode`: a response code by name. Any other text is kept, so that `validate` reports
/// it under its own path (serde's error would lose the path inside the flattened probe settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Rcode {
    Known(RcodeName),
    Unknown(String),
}

impl Default for Rcode {
    fn default() -> Self {
        Rcode::Known(RcodeName::NoError)
    }
}

impl Rcode {
    fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Rcode::Known(name) => Some(name.code()),
            Rcode::Unknown(_) => None,
        }
    }
}

/// The response codes of RFC 1035, 2136, 2845, 2930, 4635, 6891 and 7873 by the mnemonics `dig`
/// prints (hickory's `Display` gives prose instead): the one place statusd names them, for
/// `expectedRcode`, `[DNS_RCODE]` and messages alike.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::EnumIter,
)]
#[serde(rename_all = "UPPERCASE")]
// Conditions compare rcodes case-insensitively (`[DNS_RCODE] == nxdomain`); `expectedRcode`, read
// by serde, wants capitals.
#[strum(serialize_all = "UPPERCASE", ascii_case_insensitive)]
pub enum RcodeName {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    YxDomain,
    YxRrSet,
    NxRrSet,
    NotAuth,
    NotZone,
    BadVers,
    BadSig,
    BadKey,
    BadTime,
    BadMode,
    BadName,
    BadAlg,
    BadTrunc,
    BadCookie,
}

impl RcodeName {
    fn code(self) -> ResponseCode {
        match self {
            RcodeName::NoError => ResponseCode::NoError,
            RcodeName::FormErr => ResponseCode::FormErr,
            RcodeName::ServFail => ResponseCode::ServFail,
            RcodeName::NxDomain => ResponseCode::NXDomain,
            RcodeName::NotImp => ResponseCode::NotImp,
            RcodeName::Refused => ResponseCode::Refused,
            RcodeName::YxDomain => ResponseCode::YXDomain,
            RcodeName::YxRrSet => ResponseCode::YXRRSet,
            RcodeName::NxRrSet => ResponseCode::NXRRSet,
            RcodeName::NotAuth => ResponseCode::NotAuth,
            RcodeName::NotZone => ResponseCode::NotZone,
            RcodeName::BadVers => ResponseCode::BADVERS,
            RcodeName::BadSig => ResponseCode::BADSIG,
            RcodeName::BadKey => ResponseCode::BADKEY,
            RcodeName::BadTime => ResponseCode::BADTIME,
            RcodeName::BadMode => ResponseCode::BADMODE,
            RcodeName::BadName => ResponseCode::BADNAME,
            RcodeName::BadAlg => ResponseCode::BADALG,
            RcodeName::BadTrunc => ResponseCode::BADTRUNC,
            RcodeName::BadCookie => ResponseCode::BADCOOKIE,
        }
    }

    /// Every name, for messages: `NOERROR, FORMERR, …`.
    pub(crate) fn all() -> String {
        Self::VARIANTS.join(", ")
    }
}

/// The problem with a value outside a fixed set, suggesting capitals when that is all it lacks.
fn not_one_of(value: &str, what: &str, known: &[&str]) -> String {
    let hint = if known.contains(&value.to_uppercase().as_str()) {
        format!(" (write it in capitals: {})", value.to_uppercase())
    } else {
        String::new()
    };
    format!("{value:?} is not {what}{hint}; one of: {}", known.join(", "))
}

/// The mnemonic `dig` prints for a response code, `RCODE<n>` for one without a name.
fn rcode_name(code: ResponseCode) -> String {
    match RcodeName::iter().find(|name| name.code() == code) {
        Some(name) => <&str>::from(name).to_string(),
        None => format!("RCODE{}", u16::from(code)),
    }
}

/// A configured name server: the parsed form of `nameserver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Nameserver {
    address: SocketAddr,
    tcp: bool,
}

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tcp { write!(f, "tcp://{}", self.address) } else { write!(f, "{}", self.address) }
    }
}

impl FromStr for Nameserver {
    type Err = String;

    fn from_str(text: &str) -> Result<Nameserver, String> {
        let (rest, tcp) = if let Some(rest) = text.strip_prefix("tcp://") {
            (rest, true)
        } else if let Some(rest) = text.strip_prefix("udp://") {
            (rest, false)
        } else if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!("unsupported protocol {scheme:?}: write udp:// (the default) or tcp://"));
        } else {
            (text, false)
        };
        let address = if let Ok(address) = SocketAddr::from_str(rest) {
            address
        } else if let Ok(ip) = IpAddr::from_str(rest.trim_start_matches('[').trim_end_matches(']')) {
            SocketAddr::new(ip, DEFAULT_PORT)
        } else if rest.is_empty() {
            return Err("must not be empty: write an IP address, optionally with a port".into());
        } else if let Some((host, port)) = rest.rsplit_once(':')
            && IpAddr::from_str(host.trim_start_matches('[').trim_end_matches(']')).is_ok()
        {
            return Err(format!("{port:?} is not a port (1-65535)"));
        } else {
            return Err(format!(
                "{rest:?} is not an IP address: the name server must be given by address, since \
                 finding it by name would need DNS, the very thing this probe checks"
            ));
        };
        if address.port() == 0 {
            return Err("port 0 is not a port (1-65535)".into());
        }
        Ok(Nameserver { address, tcp })
    }
}

/// One resolver per name server (and one for the system's configuration) and source address,
/// built on first use and shared: a resolver holds connections and a runtime handle, too much
/// to build per probe.
pub struct Resolvers {
    built: Mutex<HashMap<ResolverKey, TokioResolver>>,
}

/// A resolver's name server (None: the system's) and `[probes] source_address`: a resolver sends
/// from the address it was built with.
type ResolverKey = (Option<Nameserver>, Option<IpAddr>);

impl Resolvers {
    pub fn new() -> Self {
        Resolvers { built: Mutex::new(HashMap::new()) }
    }

    /// A failure to build is not remembered, so fixing `/etc/resolv.conf` needs no restart.
    fn get(&self, nameserver: Option<Nameserver>, source: Option<IpAddr>) -> Result<TokioResolver, String> {
        let key = (nameserver, source);
        if let Some(resolver) = self.built.lock().get(&key) {
            return Ok(resolver.clone());
        }
        let resolver = build_resolver(nameserver, source)?;
        Ok(self.built.lock().entry(key).or_insert(resolver).clone())
    }
}

impl Default for Resolvers {
    fn default() -> Self {
        Resolvers::new()
    }
}

/// A resolver asking `nameserver` (the system's name servers when None), from `source` when
/// there is one; the error is the probe's message.
fn build_resolver(nameserver: Option<Nameserver>, source: Option<IpAddr>) -> Result<TokioResolver, String> {
    let (mut config, system_options) = match nameserver {
        Some(server) => {
            let mut connections = if server.tcp {
                vec![ConnectionConfig::tcp()]
            } else {
                // TCP only after a truncated UDP answer, as every resolver does: without it a
                // large answer (long TXT, many NS) would be an error instead of an answer.
                vec![ConnectionConfig::udp(), ConnectionConfig::tcp()]
            };
            for connection in &mut connections {
                connection.port = server.address.port();
            }
            let config =
                ResolverConfig::from_name_servers(vec![NameServerConfig::new(server.address.ip(), true, connections)]);
            (config, None)
        }
        None => {
            let (config, options) =
                read_system_conf().map_err(|error| format!("cannot read the system's DNS configuration: {error}"))?;
            (config, Some(options))
        }
    };
    if let Some(source) = source {
        config = sent_from(config, source).ok_or_else(|| {
            let servers = nameserver.map_or_else(|| "the system's name servers".to_string(), |s| s.to_string());
            format!("cannot query {servers}: {}", super::no_address_from(source))
        })?;
    }
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    if let Some(system_options) = system_options {
        *options = system_options;
    }
    // A monitor must see what the server says now, not what it said a TTL ago.
    options.cache_size = 0;
    // One attempt: a retry would hide a server that drops queries, and the probe's timeout
    // bounds the wait anyway.
    options.attempts = 0;
    options.timeout = RESOLVER_TIMEOUT;
    options.use_hosts_file = ResolveHosts::Never;
    builder.build().map_err(|error| match nameserver {
        Some(server) => format!("cannot set up a resolver for {server}: {error}"),
        None => format!("cannot read the system's DNS configuration: {error}"),
    })
}

/// `config` with every query sent from `source`: only its name servers of the source's family
/// (one of the other family would fail every query), None when it has none.
fn sent_from(config: ResolverConfig, source: IpAddr) -> Option<ResolverConfig> {
    let (domain, search, mut servers) = config.into_parts();
    servers.retain(|server| server.ip.is_ipv4() == source.is_ipv4());
    if servers.is_empty() {
        return None;
    }
    for connection in servers.iter_mut().flat_map(|server| server.connections.iter_mut()) {
        // Port 0: hickory picks a random source port per query, as it does unbound.
        connection.bind_addr = Some(SocketAddr::new(source, 0));
    }
    Some(ResolverConfig::from_parts(domain, search, servers))
}

/// The name to query: the address, fully qualified (see the module comment).
fn query_name(address: &str) -> Result<Name, String> {
    let mut name =
        Name::from_str(address).map_err(|error| format!("{address:?} is not a valid host name ({error})"))?;
    name.set_fqdn(true);
    Ok(name)
}

impl DnsSpec {
    pub(super) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        let address_path = format!("{path}.address");
        let address = address.trim();
        if address.is_empty() {
            report.problem(address_path, "must not be empty: a dns asset needs a host name to query");
        } else if address.contains("://") || address.contains('/') {
            report
                .problem(address_path, format!("{address:?} is not a host name: write only the name, as example.com"));
        } else if IpAddr::from_str(address.trim_start_matches('[').trim_end_matches(']')).is_ok() {
            report.problem(
                address_path,
                format!(
                    "{address:?} is an IP address: a dns asset queries a host name (use icmp or tcp for an address)"
                ),
            );
        } else if address.contains(':') {
            report.problem(
                address_path,
                format!("{address:?} has a port: write only the host name (nameserver sets the server and its port)"),
            );
        } else if address.contains(char::is_whitespace) {
            report.problem(address_path, format!("{address:?} is not a host name: it contains a space"));
        } else if let Err(message) = query_name(address) {
            report.problem(address_path, message);
        }

        if let DnsRecordType::Unknown(value) = &self.record_type {
            report.problem(format!("{path}.recordType"), not_one_of(value, "a record type", RECORD_TYPES));
        }
        if let Rcode::Unknown(value) = &self.expected_rcode {
            report.problem(format!("{path}.expectedRcode"), not_one_of(value, "a response code", RcodeName::VARIANTS));
        }
        if let Some(nameserver) = &self.nameserver
            && let Err(message) = Nameserver::from_str(nameserver)
        {
            report.problem(format!("{path}.nameserver"), message);
        }

        if !self.expected_values.is_empty()
            && !matches!(self.expected_rcode, Rcode::Known(RcodeName::NoError) | Rcode::Unknown(_))
        {
            report.problem(
                format!("{path}.expectedValues"),
                "only make sense with expectedRcode NOERROR: other responses carry no answers",
            );
        }
        for (index, value) in self.expected_values.iter().enumerate() {
            if let Err(message) = self.check_expected_value(value) {
                report.problem(format!("{path}.expectedValues[{index}]"), message);
            }
        }
    }

    /// Catches at load the values that could never match an answer of the record type.
    fn check_expected_value(&self, value: &str) -> Result<(), String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        match self.record_type {
            DnsRecordType::A if Ipv4Addr::from_str(value).is_err() => {
                Err(format!("{value:?} is not an IPv4 address (recordType is A)"))
            }
            DnsRecordType::Aaaa if Ipv6Addr::from_str(value).is_err() => {
                Err(format!("{value:?} is not an IPv6 address (recordType is AAAA)"))
            }
            DnsRecordType::Mx => {
                let tokens: Vec<&str> = value.split_whitespace().collect();
                match tokens.as_slice() {
                    [_exchange] => Ok(()),
                    [preference, _exchange] if preference.parse::<u16>().is_ok() => Ok(()),
                    _ => Err(format!("{value:?}: write \"preference exchange\" (10 mail.example.com) or the exchange")),
                }
            }
            _ => Ok(()),
        }
    }

    /// With `source` (`[probes] source_address`) every query is sent from that local address.
    pub(super) async fn check(&self, address: &str, resolvers: &Resolvers, source: Option<IpAddr>) -> ProbeOutcome {
        // All validated at load; a failure here is still reported, never a panic.
        let (Some(record_type), Some(expected)) = (self.record_type.record_type(), self.expected_rcode.response_code())
        else {
            return ProbeOutcome::down(None, "invalid recordType or expectedRcode");
        };
        let nameserver = match self.nameserver.as_deref().map(Nameserver::from_str).transpose() {
            Ok(nameserver) => nameserver,
            Err(message) => return ProbeOutcome::down(None, format!("nameserver: {message}")),
        };
        let name = match query_name(address.trim()) {
            Ok(name) => name,
            Err(message) => return ProbeOutcome::down(None, message),
        };
        let resolver = match resolvers.get(nameserver, source) {
            Ok(resolver) => resolver,
            Err(message) => return ProbeOutcome::down(None, message),
        };

        let (rcode, answers) = match resolver.lookup(name, record_type).await {
            Ok(lookup) => {
                let answers: Vec<Answer> =
                    lookup.answers().iter().filter(|r| r.record_type() == record_type).map(Answer::of).collect();
                (lookup.message().metadata.response_code, answers)
            }
            // hickory reports an answer without records (NXDOMAIN, or NOERROR with no data) as
            // an error; for a monitor it is a response like any other.
            Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. }))) => {
                (response_code, Vec::new())
            }
            Err(NetError::Dns(DnsError::ResponseCode(code))) => (code, Vec::new()),
            Err(error) => {
                let server = nameserver.map_or_else(|| "the system's name servers".to_string(), |s| s.to_string());
                let facts = Facts { connected: Some(false), ..Facts::default() };
                return ProbeOutcome::down(None, format!("no answer from {server} ({})", describe_error(&error)))
                    .with_facts(facts);
            }
        };

        let facts = Facts {
            connected: Some(true),
            dns_rcode: Some(rcode_name(rcode)),
            body: Some(answers.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join("\n").into_bytes()),
            ip: answers.iter().find_map(|a| a.ip).map(|ip| ip.to_string()),
            ..Facts::default()
        };
        if rcode != expected {
            return ProbeOutcome::down(None, format!("{} (expected {})", rcode_name(rcode), rcode_name(expected)))
                .with_facts(facts);
        }
        if let Some(missing) = self.expected_values.iter().find(|v| !answers.iter().any(|a| a.matches(v))) {
            let message = if answers.is_empty() {
                format!("no {} records (expected {missing})", record_type)
            } else {
                format!("answers [{}] do not include {missing}", shown_answers(&answers))
            };
            return ProbeOutcome::down(None, message).with_facts(facts);
        }
        ProbeOutcome::up(None).with_facts(facts)
    }
}

/// Words an operator knows for a query that got no response.
fn describe_error(error: &NetError) -> String {
    match error {
        NetError::Timeout => "timeout".into(),
        // What hickory reports when the only server could not be reached: it keeps this over
        // the connect error (refused, unreachable) that caused it.
        NetError::NoConnections => "cannot connect".into(),
        NetError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
            std::io::ErrorKind::TimedOut => "timeout".into(),
            _ => io.to_string(),
        },
        other => other.to_string(),
    }
}

/// One answer record as the probe shows it and compares it.
struct Answer {
    /// As shown in `[BODY]` and messages: names without their trailing dot.
    text: String,
    ip: Option<IpAddr>,
    /// The name an expected value may give alone: the exchange of an MX, the mname of an SOA.
    main_name: Option<String>,
    /// TXT compares exactly; everything else as names.
    exact: bool,
}

impl Answer {
    fn of(record: &Record) -> Answer {
        let mut answer = Answer { text: String::new(), ip: None, main_name: None, exact: false };
        match &record.data {
            RData::A(a) => answer.ip = Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => answer.ip = Some(IpAddr::V6(aaaa.0)),
            RData::CNAME(name) => answer.main_name = Some(shown_name(&name.0)),
            RData::NS(name) => answer.main_name = Some(shown_name(&name.0)),
            RData::MX(mx) => {
                let exchange = shown_name(&mx.exchange);
                answer.text = format!("{} {exchange}", mx.preference);
                answer.main_name = Some(exchange);
            }
            RData::SOA(soa) => {
                let mname = shown_name(&soa.mname);
                answer.text = format!(
                    "{mname} {} {} {} {} {} {}",
                    shown_name(&soa.rname),
                    soa.serial,
                    soa.refresh,
                    soa.retry,
                    soa.expire,
                    soa.minimum
                );
                answer.main_name = Some(mname);
            }
            RData::TXT(txt) => {
                answer.exact = true;
                answer.text = txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect();
            }
            other => answer.text = other.to_string(),
        }
        if let Some(ip) = answer.ip {
            answer.text = ip.to_string();
        } else if answer.text.is_empty()
            && let Some(name) = &answer.main_name
        {
            answer.text = name.clone();
        }
        answer
    }

    fn matches(&self, expected: &str) -> bool {
        let expected = expected.trim();
        if let Some(ip) = self.ip {
            return IpAddr::from_str(expected).is_ok_and(|e| e == ip);
        }
        if self.exact {
            return self.text == expected;
        }
        let wanted = name_tokens(expected);
        wanted == name_tokens(&self.text) || self.main_name.as_deref().is_some_and(|name| wanted == name_tokens(name))
    }
}

/// A name as an operator writes it: without the root's trailing dot.
fn shown_name(name: &Name) -> String {
    let text = name.to_string();
    text.strip_suffix('.').map(str::to_string).unwrap_or(text)
}

/// Tokens of a record's text, compared as names are: case-insensitively, a trailing dot ignored.
fn name_tokens(text: &str) -> Vec<String> {
    text.split_whitespace().map(|token| token.strip_suffix('.').unwrap_or(token).to_lowercase()).collect()
}

fn shown_answers(answers: &[Answer]) -> String {
    let all = answers.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join(", ");
    if all.chars().count() <= MAX_SHOWN_ANSWERS_CHARS {
        return all;
    }
    let cut: String = all.chars().take(MAX_SHOWN_ANSWERS_CHARS).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nameserver(text: &str) -> Result<String, String> {
        Nameserver::from_str(text).map(|n| n.to_string())
    }

    #[test]
    fn a_nameserver_is_an_address_with_an_optional_port_and_protocol() {
        assert_eq!(nameserver("10.0.0.1"), Ok("10.0.0.1:53".into()));
        assert_eq!(nameserver("10.0.0.1:5353"), Ok("10.0.0.1:5353".into()));
        assert_eq!(nameserver("udp://10.0.0.1"), Ok("10.0.0.1:53".into()));
        assert_eq!(nameserver("tcp://10.0.0.1:5353"), Ok("tcp://10.0.0.1:5353".into()));
        assert_eq!(nameserver("::1"), Ok("[::1]:53".into()));
        assert_eq!(nameserver("[::1]"), Ok("[::1]:53".into()));
        assert_eq!(nameserver("tcp://[::1]:5353"), Ok("tcp://[::1]:5353".into()));
    }

    #[test]
    fn a_nameserver_given_by_name_or_with_a_bad_port_is_refused() {
        assert!(nameserver("dns.google").is_err_and(|e| e.contains("not an IP address")));
        assert!(nameserver("dns.google:53").is_err_and(|e| e.contains("not an IP address")));
        assert!(nameserver("10.0.0.1:99999").is_err_and(|e| e.contains("not a port")));
        assert!(nameserver("10.0.0.1:0").is_err_and(|e| e.contains("not a port")));
        assert!(nameserver("https://10.0.0.1").is_err_and(|e| e.contains("unsupported protocol")));
        assert!(nameserver("").is_err_and(|e| e.contains("must not be empty")));
    }

    /// The system's name servers (no `nameserver`) are asked from the source too, those of its
    /// family only; none of its family is the probe's failure.
    #[cfg(unix)]
    #[test]
    fn the_system_name_servers_of_the_source_family_are_asked_from_it() {
        let (config, _) =
            hickory_resolver::system_conf::parse_resolv_conf("nameserver 10.0.0.53\nnameserver fd00::53\n")
                .expect("a resolv.conf");
        let bound = |source: &str| {
            let source: IpAddr = source.parse().expect("an address");
            sent_from(config.clone(), source).map(|config| {
                let servers = config.name_servers();
                let binds: Vec<_> = servers.iter().flat_map(|s| s.connections.iter().map(|c| c.bind_addr)).collect();
                (servers.iter().map(|s| s.ip.to_string()).collect::<Vec<_>>(), binds)
            })
        };
        let (servers, binds) = bound("127.0.0.2").expect("an IPv4 server");
        assert_eq!(servers, ["10.0.0.53"]);
        assert!(!binds.is_empty() && binds.iter().all(|b| *b == Some("127.0.0.2:0".parse().expect("an address"))));
        let (servers, binds) = bound("::1").expect("an IPv6 server");
        assert_eq!(servers, ["fd00::53"]);
        assert!(!binds.is_empty() && binds.iter().all(|b| *b == Some("[::1]:0".parse().expect("an address"))));

        let (v4_only, _) =
            hickory_resolver::system_conf::parse_resolv_conf("nameserver 10.0.0.53\n").expect("a resolv.conf");
        assert!(sent_from(v4_only, "::1".parse().expect("an address")).is_none());
    }

    #[test]
    fn answers_compare_as_their_type_does() {
        let a = Answer { text: "::1".into(), ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), main_name: None, exact: false };
        assert!(a.matches("0:0::1"));
        assert!(!a.matches("::2"));
        let mx =
            Answer { text: "10 mail.svc.test".into(), ip: None, main_name: Some("mail.svc.test".into()), exact: false };
        assert!(mx.matches("10 Mail.Svc.Test."));
        assert!(mx.matches("mail.svc.test."));
        assert!(!mx.matches("20 mail.svc.test"));
        let txt = Answer { text: "v=spf1 -all".into(), ip: None, main_name: None, exact: true };
        assert!(txt.matches("v=spf1 -all"));
        assert!(!txt.matches("V=SPF1 -ALL"));
    }

    #[test]
    fn response_codes_are_named_as_dig_names_them() {
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::Unknown(3000)), "RCODE3000");
    }

    /// `expectedRcode` (serde), conditions (strum) and probe results (`rcode_name`) name every
    /// code alike, and no two names share a code.
    #[test]
    fn every_rcode_has_one_name_everywhere() {
        for name in RcodeName::iter() {
            let text: &str = name.into();
            assert_eq!(serde_json::to_value(name).ok(), Some(serde_json::json!(text)));
            assert_eq!(serde_json::from_value::<Rcode>(serde_json::json!(text)).ok(), Some(Rcode::Known(name)));
            assert_eq!(text.to_lowercase().parse::<RcodeName>(), Ok(name));
            assert_eq!(rcode_name(name.code()), text);
        }
        assert_eq!(
            serde_json::from_value::<Rcode>(serde_json::json!("nxdomain")).ok(),
            Some(Rcode::Unknown("nxdomain".into()))
        );
    }
}
