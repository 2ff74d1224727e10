//! HTTP(S) probe: send the request; healthy when the status is one of `expectedStatusCodes`
//! (or below 400 when none are given, unless `conditions` judge the status), and the body holds
//! `bodyContains` and not `bodyNotContains`.

mod direct;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Facts, ProbeContext, ProbeDetail, ProbeOutcome, Timings, millis_since, tls};
use crate::http_error::{MAX_RESPONSE_HEAD_BYTES, MAX_RESPONSE_HEADERS, describe_http_error, describe_reqwest_error};
use crate::redact::Secret;
use crate::report::{Bound, Report};

/// Enough body to finish a normal health response; a runaway body is cut here.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 10;
/// What every HTTP probe says it is.
const USER_AGENT: &str = concat!("statusd/", env!("CARGO_PKG_VERSION"));
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    #[serde(default)]
    pub expected_status_codes: Vec<u16>,
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers; values are secrets (they often carry credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// Accept any certificate (self-signed test servers); expiry is still reported.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Trust this CA (PEM) as well as the system's roots.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// Reuse connections between probes. Off by default: a fresh connection per probe notices
    /// a server that stopped accepting new ones.
    #[serde(default)]
    pub keep_alive: bool,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub body_not_contains: Option<String>,
    /// The asset's address, parsed at its first probe (see [`ParsedUrl`]).
    #[serde(skip)]
    parsed: ParsedUrl,
}

/// The address of an HTTP asset parsed once, at its first probe, and kept with the spec: given
/// a string, reqwest parses it on every request, IDNA mapping of the host included. That was one
/// of three URL parses per probe, which together took ≈ 3 % of statusd's CPU at 1,000 probes a
/// second (perf); reqwest's redirect policy and its response made the other two, which the
/// patched reqwest skips unless a redirect was followed (`vendor/README.md`).
///
/// It keeps the text it parsed and answers only for that text, so a spec probed with another
/// address (an edited copy of a config) is never sent to the first one. A clone starts empty:
/// the copies of a config that the API makes for its answers are never probed, and copying the
/// parsed URL would cost each of them three allocations. It takes no part in comparing configs:
/// it is derived from the address, which is compared.
///
/// Boxed, as it costs every asset's config the size of its largest probe type: 16 bytes inline,
/// and for an HTTP asset once probed [`Parsed`] on the heap.
#[derive(Default)]
struct ParsedUrl(std::sync::OnceLock<Box<Parsed>>);

/// What [`ParsedUrl`] keeps.
struct Parsed {
    /// The address this was parsed from.
    text: Box<str>,
    /// None if it is no URL: validation refuses such a config; reqwest then reports the error.
    url: Option<reqwest::Url>,
    /// Where the probe's own exchange sends it (see `direct.rs`); None where reqwest must.
    target: Option<direct::Target>,
    /// A probe of it was answered with a redirect to follow: reqwest follows redirects, so its
    /// probes go through reqwest from then on (see [`HttpSpec::check`]).
    redirects: AtomicBool,
}

impl ParsedUrl {
    /// `address` parsed, or None if it is not the address parsed first.
    fn of(&self, address: &str) -> Option<&Parsed> {
        let parsed = self.0.get_or_init(|| {
            let url = reqwest::Url::parse(address).ok();
            let target = url.as_ref().and_then(direct::Target::of);
            Box::new(Parsed { text: address.into(), url, target, redirects: AtomicBool::new(false) })
        });
        (*parsed.text == *address).then_some(&**parsed)
    }
}

impl Clone for ParsedUrl {
    fn clone(&self) -> Self {
        ParsedUrl::default()
    }
}

impl PartialEq for ParsedUrl {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ParsedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParsedUrl")
    }
}

fn default_method() -> String {
    "GET".into()
}
fn default_true() -> bool {
    true
}

/// How long reqwest's TCP settings take to give up on a peer that vanished: its user timeout
/// (unacknowledged data) is 30 s, its keepalive (15 s idle, then 3 probes 15 s apart) 60 s.
const DEAD_PEER_SECONDS: u64 = 30;

/// The settings that need a client of their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    follow_redirects: bool,
    insecure_skip_verify: bool,
    keep_alive: bool,
    ca_file: Option<PathBuf>,
    /// TCP keepalive and user timeout on each connection: for connections kept between probes,
    /// and for probes whose timeout is longer than [`DEAD_PEER_SECONDS`], where they notice a
    /// peer that vanished before the probe's own timeout does.
    dead_peer_checks: bool,
}

/// One client per distinct client setting, built on first use and shared: building a client
/// costs more than a probe (see STACK.md).
pub struct Clients {
    /// Each with the TLS setup it was built on: a client whose `caFile` has changed since is
    /// built again.
    built: Mutex<HashMap<ClientKey, (reqwest::Client, Arc<tls::Setup>)>>,
    /// `[probes] source_address`: the local address every probe is sent from.
    source: Option<IpAddr>,
    /// The probe's own exchange for `http://` over a fresh connection; None when the
    /// environment names a proxy for `http://` (reqwest's clients use it, see [`proxy_in`]).
    direct: Option<direct::Direct>,
}

/// Whether `var` (the environment) names a proxy that reqwest would send `http://` requests
/// through: reqwest reads `HTTP_PROXY` and `ALL_PROXY` as curl does, in either case, and sends
/// such probes to the proxy (less `NO_PROXY`'s hosts; here every probe then goes by reqwest).
fn proxy_in(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| var(name).is_some_and(|value| !value.is_empty()))
}

impl Clients {
    /// Clients whose `https://` requests judge certificates with `trust`'s roots and verdicts.
    pub fn new(source: Option<IpAddr>, trust: &tls::Trust) -> Result<Clients, reqwest::Error> {
        let default = ClientKey {
            follow_redirects: true,
            insecure_skip_verify: false,
            keep_alive: false,
            ca_file: None,
            dead_peer_checks: false,
        };
        let mut built = HashMap::new();
        // The common case is built now, so that a client reqwest refuses stops statusd at start.
        // Its TLS setup has no `caFile` to read, and a TLS config fails only on a provider
        // without TLS 1.2 and 1.3.
        if let Ok(setup) = trust.setup(None)
            && let Ok(tls) = trust.https_config(&setup, false)
        {
            built.insert(default.clone(), (build(&default, tls, source)?, setup));
        }
        let direct = (!proxy_in(|name| std::env::var_os(name))).then(|| direct::Direct::new(source));
        Ok(Clients { built: Mutex::new(built), source, direct })
    }

    fn get(&self, key: ClientKey, trust: &tls::Trust) -> Result<reqwest::Client, String> {
        // Only a `caFile` can change under a client (`Trust::setup` reads it again once
        // rewritten); the system's roots are read once, so most probes skip the lookup.
        let current = match &key.ca_file {
            Some(path) => Some(trust.setup(Some(path))?),
            None => None,
        };
        if let Some((client, built_on)) = self.built.lock().get(&key)
            && current.as_ref().is_none_or(|setup| Arc::ptr_eq(built_on, setup))
        {
            return Ok(client.clone());
        }
        let setup = match current {
            Some(setup) => setup,
            None => trust.setup(None)?,
        };
        let tls = trust.https_config(&setup, key.insecure_skip_verify)?;
        let client = build(&key, tls, self.source).map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        self.built.lock().insert(key, (client.clone(), setup));
        Ok(client)
    }
}

fn build(
    key: &ClientKey,
    tls: rustls::ClientConfig,
    source: Option<IpAddr>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .local_address(source)
        .user_agent(USER_AGENT)
        // Roots, `caFile`, `insecureSkipVerify` and no session resumption: `Trust::https_config`.
        .tls_backend_preconfigured(tls)
        .tls_info(true)
        .redirect(if key.follow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        })
        // Asked for (Accept-Encoding) and decoded, as browsers do: many CDNs compress whatever
        // the client accepts, and keywords are looked for in the decoded body.
        .gzip(true)
        .deflate(true)
        .brotli(true)
        // Heads that curl and browsers read must not fail a probe: many headers, folded
        // (obsolete) header lines, `Name : value`, and lines that are not headers at all, which
        // are skipped as curl skips them.
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .http1_allow_obsolete_multiline_headers_in_responses(true)
        .http1_allow_spaces_after_header_name_in_responses(true)
        .http1_ignore_invalid_headers_in_responses(true)
        .http2_max_header_list_size(u32::try_from(MAX_RESPONSE_HEAD_BYTES).unwrap_or(u32::MAX));
    if !key.keep_alive {
        // A connection used once ends with a reset, as HAProxy ends its checks (vendored
        // reqwest's `tcp_reset_on_close`): no socket waits in TIME_WAIT for 60 s per probe on
        // either side. Over HTTP/2 the server cannot be asked to close first (see
        // `HttpSpec::request`) and statusd's side would wait, holding a local port; over
        // HTTP/1.1 the server's would. On loopback, where the server's half of a close runs in
        // statusd's system calls, it saved about a tenth of the CPU per probe (README, Benchmarks).
        builder = builder.pool_max_idle_per_host(0).tcp_reset_on_close(true);
    }
    if !key.dead_peer_checks {
        // A connection closed within DEAD_PEER_SECONDS by the probe's timeout never lives long
        // enough for reqwest's keepalive (15 s, 15 s, 3 probes) or user timeout (30 s) to act:
        // five `setsockopt` calls per probe saved.
        builder = builder.tcp_keepalive(None).tcp_keepalive_interval(None).tcp_keepalive_retries(None);
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        {
            builder = builder.tcp_user_timeout(None);
        }
    }
    builder.build()
}

impl HttpSpec {
    /// Status codes are those of RFC 9110 (section 15): 100 to 599.
    pub const BOUNDS: &'static [Bound] = &[Bound::each("expectedStatusCodes", 100, 599)];

    pub(super) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        let address_path = format!("{path}.address");
        if address.trim().is_empty() {
            report.problem(address_path, "must not be empty: an http asset needs a URL");
        } else {
            match reqwest::Url::parse(address) {
                Err(e) => report.problem(address_path, format!("{address:?} is not a valid URL ({e})")),
                Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                    report.problem(address_path, format!("scheme {:?} is not http or https", url.scheme()))
                }
                Ok(_) => {}
            }
        }
        if !METHODS.contains(&self.method.as_str()) {
            report.problem(format!("{path}.method"), format!("{:?} is not one of {}", self.method, METHODS.join(", ")));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                report.problem(format!("{path}.headers.{name}"), "is not a valid header name");
            } else if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                report.problem(format!("{path}.headers.{name}"), "the value has characters a header cannot hold");
            }
        }
        for (key, text) in [("bodyContains", &self.body_contains), ("bodyNotContains", &self.body_not_contains)] {
            if text.as_deref() == Some("") {
                report.problem(format!("{path}.{key}"), "must not be empty (leave it out instead)");
            }
        }
        if let Some(ca_file) = &self.ca_file
            && let Err(problem) = tls::read_ca_file(ca_file)
        {
            report.problem(format!("{path}.caFile"), problem);
        }
    }

    fn accepts(&self, status: u16) -> bool {
        if self.expected_status_codes.is_empty() { status < 400 } else { self.expected_status_codes.contains(&status) }
    }

    fn expectation(&self) -> String {
        if self.expected_status_codes.is_empty() {
            "< 400".into()
        } else {
            let codes: Vec<String> = self.expected_status_codes.iter().map(u16::to_string).collect();
            codes.join(", ")
        }
    }

    /// The client for this spec, probing with `timeout`.
    fn client_key(&self, timeout: Duration) -> ClientKey {
        ClientKey {
            follow_redirects: self.follow_redirects,
            insecure_skip_verify: self.insecure_skip_verify,
            keep_alive: self.keep_alive,
            ca_file: self.ca_file.clone(),
            dead_peer_checks: self.keep_alive || timeout > Duration::from_secs(DEAD_PEER_SECONDS),
        }
    }

    fn method(&self) -> reqwest::Method {
        // Validated at load: the method is one of METHODS.
        reqwest::Method::from_bytes(self.method.as_bytes()).unwrap_or(reqwest::Method::GET)
    }

    /// The request's headers, in order: `Connection: close` where it is due, then the asset's.
    fn header_lines(&self) -> impl Iterator<Item = (&str, &str)> {
        // A probe that does not keep its connection says so (RFC 9112, section 9.6: a client
        // that does not keep connections MUST send `close`), as blackbox_exporter and Gatus do.
        // The server then closes first, so the connection's TIME_WAIT (60 s on Linux) is the
        // server's: statusd's side holds no local port for it, and probing one address:port
        // (say, many paths behind one load balancer) is not capped at ≈ 470 connections a
        // second by the ephemeral ports that TIME_WAIT would hold. A `Connection` header of the
        // asset's own is sent instead. HTTP/2 has no such header (hyper leaves it out there).
        // Either way statusd then resets the connection (`build`, `direct.rs`), and nothing waits.
        let close = !self.keep_alive && !self.headers.keys().any(|name| name.eq_ignore_ascii_case("connection"));
        close
            .then_some(("connection", "close"))
            .into_iter()
            .chain(self.headers.iter().map(|(name, value)| (name.as_str(), value.expose())))
    }

    fn request(&self, client: &reqwest::Client, address: &str) -> reqwest::RequestBuilder {
        let mut request = match self.parsed.of(address).and_then(|parsed| parsed.url.as_ref()) {
            Some(url) => client.request(self.method(), url.clone()),
            None => client.request(self.method(), address),
        };
        for (name, value) in self.header_lines() {
            request = request.header(name, value);
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        request
    }

    /// The request the probe's own exchange sends to `target`: the headers reqwest's clients
    /// would send (see `build`; `Accept-Encoding` is added by the exchange, as reqwest adds it),
    /// or None if one of the asset's would not parse (reqwest then reports it).
    fn direct_request(&self, target: &direct::Target) -> Option<hyper::Request<String>> {
        let mut headers = HeaderMap::new();
        for (name, value) in self.header_lines() {
            headers.append(HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?);
        }
        // reqwest's defaults go in where the asset set none (its `execute_request`).
        headers.entry(header::USER_AGENT).or_insert_with(|| HeaderValue::from_static(USER_AGENT));
        headers.entry(header::ACCEPT).or_insert_with(|| HeaderValue::from_static("*/*"));
        Some(target.request(self.method(), headers, self.body.clone().unwrap_or_default()))
    }

    /// Whether a probe with `key`'s settings may use the probe's own exchange: one connection
    /// used once, closed within the probe's timeout (so no TCP keepalive to set), and no
    /// redirect it might have to follow with a method that must not be sent twice: a redirect
    /// hands the probe to reqwest, which asks the address again (see [`HttpSpec::check`]), and
    /// only GET, HEAD and OPTIONS are safe to repeat (RFC 9110, section 9.2.1).
    fn may_exchange_directly(&self, key: &ClientKey) -> bool {
        !key.keep_alive
            && !key.dead_peer_checks
            && (!self.follow_redirects || matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS"))
    }

    pub(super) async fn check(
        &self,
        address: &str,
        has_conditions: bool,
        timeout: Duration,
        context: &ProbeContext,
    ) -> ProbeOutcome {
        let key = self.client_key(timeout);
        if let Some(direct) = context.http.direct.as_ref().filter(|_| self.may_exchange_directly(&key))
            && let Some(parsed) = self.parsed.of(address)
            && let Some(target) = parsed.target.as_ref().filter(|_| !parsed.redirects.load(Ordering::Relaxed))
            && let Some(request) = self.direct_request(target)
        {
            match self.check_directly(direct, target, request, has_conditions).await {
                Some(outcome) => return outcome,
                // Answered with a redirect to follow: reqwest follows it, from the address.
                None => parsed.redirects.store(true, Ordering::Relaxed),
            }
        }
        let client = match context.http.get(key, &context.tls) {
            Ok(client) => client,
            Err(problem) => return ProbeOutcome::down(None, problem),
        };
        let started = Instant::now();
        // No client timeout here: `probe::run` bounds the whole probe (body included), so a
        // timeout always reads the same, whichever layer would have noticed it first.
        // The URL asked for, to tell whether the answer came after a redirect.
        let mut asked = None;
        let sent = match self.request(&client, address).build() {
            Ok(request) => {
                asked = Some(request.url().clone());
                client.execute(request).await
            }
            Err(e) => Err(e),
        };
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let facts = Facts { connected: Some(!e.is_connect()), ..Facts::default() };
                return ProbeOutcome::down(None, describe_reqwest_error(&e.without_url())).with_facts(facts);
            }
        };
        let head = Head {
            first_byte_ms: millis_since(started),
            status: response.status().as_u16(),
            redirected: asked.is_some_and(|asked| !same_resource(response.url(), &asked)),
            ip: response.remote_addr().map(|a| a.ip()),
            certificate_expires_at: response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate())
                .and_then(tls::not_after),
            undecoded: undecoded(response.headers()),
        };
        self.read(head, reqwest::Body::from(response), has_conditions).await
    }

    /// The probe over its own exchange (`direct.rs`), or None if the answer is a redirect to
    /// follow: the caller then hands the probe to reqwest.
    async fn check_directly(
        &self,
        direct: &direct::Direct,
        target: &direct::Target,
        request: hyper::Request<String>,
        has_conditions: bool,
    ) -> Option<ProbeOutcome> {
        let started = Instant::now();
        let answer = direct
            .exchange(target, request, has_conditions, async |response, ip| {
                let status = response.status().as_u16();
                // The statuses reqwest (tower-http's `FollowRedirect`) follows, given a Location.
                if self.follow_redirects
                    && matches!(status, 301 | 302 | 303 | 307 | 308)
                    && response.headers().contains_key(header::LOCATION)
                {
                    return None;
                }
                let head = Head {
                    first_byte_ms: millis_since(started),
                    status,
                    redirected: false,
                    ip,
                    certificate_expires_at: None,
                    undecoded: undecoded(response.headers()),
                };
                Some(self.read(head, response.into_body(), has_conditions).await)
            })
            .await;
        let (connected, reason) = match answer {
            Ok(outcome) => return outcome,
            Err(direct::Failure::Connect(e)) => (false, describe_http_error(&*e)),
            Err(direct::Failure::Exchange(e)) => (true, describe_http_error(&e)),
        };
        Some(ProbeOutcome::down(None, reason).with_facts(Facts { connected: Some(connected), ..Facts::default() }))
    }

    /// Reads (a bounded part of) `body` and judges the answer: a server that sends headers and
    /// then dies is down. The bound is on the decoded body (chunks arrive decoded), so a
    /// decompression bomb is cut like any endless body.
    async fn read<B>(&self, head: Head, body: B, has_conditions: bool) -> ProbeOutcome
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Head { first_byte_ms, status, redirected, ip, certificate_expires_at, undecoded } = head;
        let code = Some(i32::from(status));
        let mut facts = Facts {
            status: Some(status),
            connected: Some(true),
            ip: ip.filter(|_| has_conditions).map(|ip| ip.to_string()),
            certificate_expiration_seconds: certificate_expires_at.map(|at| (at - Utc::now()).num_seconds()),
            ..Facts::default()
        };
        let detail = ProbeDetail {
            timings: Some(Timings { first_byte_ms: Some(first_byte_ms), ..Timings::default() }),
            certificate_expires_at,
        };

        let keep_body = self.body_contains.is_some() || self.body_not_contains.is_some() || has_conditions;
        let mut chunks = pin!(body);
        let mut body = Vec::new();
        let mut read = 0usize;
        let mut cut = false;
        loop {
            match chunks.as_mut().frame().await {
                Some(Ok(frame)) => {
                    // Trailers are not the body.
                    let Ok(chunk) = frame.into_data() else { continue };
                    read += chunk.len();
                    if keep_body {
                        let room = MAX_BODY_BYTES.saturating_sub(body.len());
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    if read >= MAX_BODY_BYTES {
                        cut = true;
                        break;
                    }
                }
                None => break,
                Some(Err(e)) => {
                    let reason = describe_http_error(&*e.into());
                    return ProbeOutcome::down(code, format!("HTTP {status}, then reading the body failed: {reason}"))
                        .with_facts(facts)
                        .with_detail(detail);
                }
            }
        }
        let body_note = body_note(cut, undecoded.as_deref());
        let verdict = self.judge(status, redirected, &body, has_conditions, body_note.as_deref());
        if keep_body {
            facts.body = Some(body);
            facts.body_note = body_note;
        }
        let outcome = match verdict {
            Ok(()) => ProbeOutcome::up(code),
            Err(message) => ProbeOutcome::down(code, message),
        };
        outcome.with_facts(facts).with_detail(detail)
    }

    /// The status check (left to the conditions when they exist and no codes are listed, as
    /// in Gatus), then the body keywords.
    /// `redirected`: the status is the answer to a redirect that was followed; `note` says what
    /// of the body could not be judged, for the body keywords' messages.
    fn judge(
        &self,
        status: u16,
        redirected: bool,
        body: &[u8],
        has_conditions: bool,
        note: Option<&str>,
    ) -> Result<(), String> {
        let status_judged_by_conditions = has_conditions && self.expected_status_codes.is_empty();
        if !status_judged_by_conditions && !self.accepts(status) {
            if !redirected {
                return Err(format!("HTTP {status} (expected {})", self.expectation()));
            }
            // Expecting a 3xx while following redirects can never succeed: say how to fix it.
            let hint = if self.expected_status_codes.iter().any(|code| (300..400).contains(code)) {
                "; set followRedirects: false to check the redirect itself"
            } else {
                ""
            };
            return Err(format!("HTTP {status} after a redirect (expected {}{hint})", self.expectation()));
        }
        let contains = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
        let noted = |message: String| match note {
            Some(note) => format!("{message} ({note})"),
            None => message,
        };
        if let Some(needle) = &self.body_contains
            && !contains(needle)
        {
            return Err(noted(format!("HTTP {status}, body does not contain {needle:?}")));
        }
        if let Some(needle) = &self.body_not_contains
            && contains(needle)
        {
            return Err(noted(format!("HTTP {status}, body contains {needle:?}")));
        }
        Ok(())
    }
}

/// What the head of an answer told, before its body is read.
struct Head {
    /// From the probe's start (connecting included) to the response head.
    first_byte_ms: u64,
    status: u16,
    /// The answer came after a redirect that was followed.
    redirected: bool,
    /// The address the answer came from, for conditions (`[IP]`), which alone read it: the
    /// probe's own exchange looks it up only for them.
    ip: Option<IpAddr>,
    certificate_expires_at: Option<DateTime<Utc>>,
    /// The `Content-Encoding` left on a body the client could not decode: such a body is judged
    /// as it came (compressed), and said so.
    undecoded: Option<String>,
}

/// The `Content-Encoding` of a body left undecoded, if any (decoding removes the header).
fn undecoded(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_ENCODING)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_string())
        .filter(|encoding| !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity"))
}

/// Whether two URLs name the same resource: credentials (sent in a header, not in the URL
/// reqwest reports) and the fragment (never sent) aside.
fn same_resource(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    // Nearly every answer comes from the URL asked: no copies then.
    if a == b {
        return true;
    }
    let bare = |url: &reqwest::Url| {
        let mut url = url.clone();
        // Only a URL without a host refuses these, and it has no credentials to clear.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        url
    };
    bare(a) == bare(b)
}

/// What of a body the probe could not judge: the part past [`MAX_BODY_BYTES`], or all of it when
/// it came in an encoding the client does not decode (only gzip, deflate and br are asked for).
fn body_note(cut: bool, undecoded: Option<&str>) -> Option<String> {
    let mut notes = Vec::new();
    if let Some(encoding) = undecoded {
        notes.push(format!("the body is {encoding}-encoded, which statusd does not decode"));
    }
    if cut {
        notes.push(format!("only the first {} MiB of the body was read", MAX_BODY_BYTES / (1024 * 1024)));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HttpSpec {
        serde_json::from_value(serde_json::json!({"method": "GET"})).expect("an http spec")
    }

    /// The URL `parsed` keeps for `address`, as text.
    fn url_of(parsed: &ParsedUrl, address: &str) -> Option<String> {
        parsed.of(address).and_then(|parsed| parsed.url.as_ref()).map(reqwest::Url::to_string)
    }

    #[test]
    fn the_parsed_address_changes_neither_comparisons_nor_copies() {
        let probed = spec();
        assert_eq!(url_of(&probed.parsed, "http://a.example/health").as_deref(), Some("http://a.example/health"));
        // The reload diff compares configs: a probed asset must still equal its config as loaded.
        assert_eq!(probed, spec(), "a spec that was probed equals the same spec freshly loaded");
        // A copy starts over (and would answer only for its own text anyway).
        let copy = probed.clone();
        assert_eq!(url_of(&copy.parsed, "http://b.example/").as_deref(), Some("http://b.example/"));
        // The same spec asked for another address answers nothing: reqwest then parses the text.
        assert!(probed.parsed.of("http://b.example/").is_none());
        assert_eq!(url_of(&probed.parsed, "http://a.example/health").as_deref(), Some("http://a.example/health"));
        assert!(url_of(&spec().parsed, "not a url").is_none(), "reqwest reports what is no URL");
    }

    #[tokio::test]
    async fn a_probe_future_stays_small_because_the_exchange_is_boxed() {
        // A future nested in async fns is copied whole each time the one above it first polls
        // it: the exchange's state (connection, request, decoder, body) lives in one box
        // (`direct.rs`), so that the futures above it stay small. Unboxed, this one was 8.8 KB
        // in a debug build; boxed, 1.7 KB (the reqwest path's state is the larger part now).
        let spec = spec();
        let context = crate::probe::ProbeContext::new().expect("clients");
        let probe = spec.check("http://127.0.0.1:9/", false, Duration::from_secs(1), &context);
        assert!(std::mem::size_of_val(&probe) < 4096, "{} bytes", std::mem::size_of_val(&probe));
    }

    #[test]
    fn only_plain_http_without_credentials_is_exchanged_directly() {
        let target = |address: &str| spec().parsed.of(address).is_some_and(|parsed| parsed.target.is_some());
        assert!(target("http://a.example/health?full=1#top"));
        assert!(target("http://127.0.0.1:8080/"));
        assert!(target("http://[::1]:8080/"));
        assert!(!target("https://a.example/"), "TLS goes by reqwest");
        assert!(!target("http://user:secret@a.example/"), "reqwest turns credentials into Authorization");
        assert!(!target("not a url"));
    }

    #[test]
    fn the_direct_request_has_the_head_reqwest_would_send() {
        let parsed = ParsedUrl::default();
        let target =
            parsed.of("http://a.example:8080/health?full=1#top").and_then(|p| p.target.as_ref()).expect("a target");
        let request = spec().direct_request(target).expect("a request");
        assert_eq!(request.uri(), "/health?full=1", "origin form, no fragment");
        let head: Vec<(String, &str)> =
            request.headers().iter().map(|(name, value)| (name.to_string(), value.to_str().expect("text"))).collect();
        let expected =
            [("connection", "close"), ("user-agent", USER_AGENT), ("accept", "*/*"), ("host", "a.example:8080")];
        assert_eq!(head, expected.map(|(name, value)| (name.to_string(), value)));
        // The asset's own headers win over the defaults, and its `Connection` over `close`.
        let own: HttpSpec = serde_json::from_value(serde_json::json!({
            "headers": {"Connection": "keep-alive", "User-Agent": "mine", "Host": "b.example"}
        }))
        .expect("a spec");
        let request = own.direct_request(target).expect("a request");
        let value =
            |name: &str| request.headers().get_all(name).iter().map(|v| v.to_str().expect("text")).collect::<Vec<_>>();
        assert_eq!(
            (value("connection"), value("user-agent"), value("host")),
            (vec!["keep-alive"], vec!["mine"], vec!["b.example"])
        );
    }

    #[test]
    fn the_direct_exchange_is_left_to_reqwest_where_it_would_differ() {
        let key = |spec: &HttpSpec| spec.client_key(Duration::from_secs(10));
        let plain = spec();
        assert!(plain.may_exchange_directly(&key(&plain)));
        let kept: HttpSpec = serde_json::from_value(serde_json::json!({"keepAlive": true})).expect("a spec");
        assert!(!kept.may_exchange_directly(&key(&kept)), "pooled connections are reqwest's");
        let long = plain.client_key(Duration::from_secs(DEAD_PEER_SECONDS + 1));
        assert!(!plain.may_exchange_directly(&long), "TCP keepalive is set by reqwest");
        let post: HttpSpec = serde_json::from_value(serde_json::json!({"method": "POST"})).expect("a spec");
        assert!(!post.may_exchange_directly(&key(&post)), "a POST that may be redirected is never sent twice");
        let post_here: HttpSpec =
            serde_json::from_value(serde_json::json!({"method": "POST", "followRedirects": false})).expect("a spec");
        assert!(post_here.may_exchange_directly(&key(&post_here)));
    }

    #[test]
    fn a_proxy_in_the_environment_leaves_every_probe_to_reqwest() {
        let env = |set: &'static str, value: &'static str| move |name: &str| (name == set).then(|| value.into());
        assert!(!proxy_in(|_| None));
        assert!(proxy_in(env("HTTP_PROXY", "http://proxy:3128")));
        assert!(proxy_in(env("http_proxy", "http://proxy:3128")));
        assert!(proxy_in(env("ALL_PROXY", "socks5://proxy")));
        assert!(!proxy_in(env("HTTPS_PROXY", "http://proxy:3128")), "only for https://, which reqwest sends");
        assert!(!proxy_in(env("HTTP_PROXY", "")), "empty is unset, as for curl");
    }

    #[test]
    fn tcp_dead_peer_checks_are_left_off_only_where_the_probe_timeout_comes_first() {
        let short = spec().client_key(Duration::from_secs(DEAD_PEER_SECONDS));
        assert!(!short.dead_peer_checks, "a probe over within 30 s never lets them act");
        let long = spec().client_key(Duration::from_secs(DEAD_PEER_SECONDS + 1));
        assert!(long.dead_peer_checks, "a longer probe hears of a vanished peer from TCP first");
        let kept: HttpSpec = serde_json::from_value(serde_json::json!({"keepAlive": true})).expect("a spec");
        assert!(kept.client_key(Duration::from_secs(5)).dead_peer_checks, "pooled connections outlive a probe");
        assert_ne!(short, long, "each gets a client of its own");
    }

    #[test]
    fn the_same_resource_ignores_credentials_and_fragments_only() {
        let url = |s: &str| reqwest::Url::parse(s).expect("a URL");
        assert!(same_resource(&url("http://a.example/x"), &url("http://a.example/x")));
        assert!(same_resource(&url("http://u:p@a.example/x#top"), &url("http://a.example/x")));
        assert!(!same_resource(&url("http://a.example/x"), &url("http://a.example/y")));
        assert!(!same_resource(&url("http://a.example/x"), &url("https://a.example/x")));
    }
}
