//! TLS certificate probe: connect to `host:port`, complete a TLS handshake and judge the
//! certificate chain the server sent: trusted, issued for the right name, and valid for at least
//! `minDaysValid` more days.
//!
//! The handshake accepts any chain, so that an untrusted or expired certificate is still seen
//! and its expiry reported; the chain is then judged by rustls' own WebPki verifier, the one a
//! normal client would have used. Handshake signatures are always verified: a server must still
//! prove it holds the key of the certificate it presents.
//!
//! Expiry is taken over the path the verifier accepted (leaf, the intermediates it used, and the
//! trusted root), not over everything the server sent: servers often send extra certificates (an
//! expired cross-signed copy of their root, as many did when old roots expired in 2020 and 2021)
//! that no client uses. Only when verification is off (`insecureSkipVerify`) or fails is the
//! served chain's earliest expiry reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::tcp::{connect, describe_connect_error, host_of, validate_host_port};
use super::{ProbeDetail, ProbeOutcome, millis_since};
use crate::report::{Bound, Report};

const SECONDS_PER_DAY: i64 = 24 * 60 * 60;
/// How long the server has to answer `close_notify` by closing before the probe resets the
/// connection (see [`close_after_the_server`]).
const CLOSE_GRACE: Duration = Duration::from_millis(200);
/// Names listed in a name-mismatch message; a certificate may carry hundreds.
const NAMES_SHOWN: usize = 3;

/// Ends a probe's TLS connection: `close_notify` (RFC 8446, section 6.1), then the server's
/// own closing awaited before statusd closes, so that the server closes the TCP connection
/// first and holds its TIME_WAIT. Closing first, statusd would hold its local port for 60 s,
/// and off loopback (`net.ipv4.tcp_tw_reuse` 0, the default) the 28,232 ephemeral ports then
/// last ≈ 470 probes a second to one address and port (README, Benchmarks). A server that has
/// not closed within [`CLOSE_GRACE`] (one that does not read its socket, or waits for more) is
/// reset instead (`SO_LINGER` 0, as HAProxy ends its checks): its handshake finished long
/// before, so it sees a reset connection, not a failed handshake, which a reset sent at once
/// could make of a handshake the server had not yet read to its end.
async fn close_after_the_server(tls: tokio_rustls::client::TlsStream<TcpStream>) {
    let (mut tcp, mut connection) = tls.into_inner();
    connection.send_close_notify();
    let closed = tokio::time::timeout(CLOSE_GRACE, async {
        let mut alert = Vec::new();
        while connection.wants_write() {
            connection.write_tls(&mut alert)?;
        }
        tcp.write_all(&alert).await?;
        // What still comes (session tickets, the server's close_notify) is read past, up to
        // the end of the stream: the server has closed.
        let mut rest = [0u8; 1024];
        while tcp.read(&mut rest).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
    if !matches!(closed, Ok(Ok(()))) {
        let _ = tcp.set_zero_linger();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Fail when the earliest expiry in the chain is closer than this.
    #[serde(default = "default_min_days_valid")]
    pub min_days_valid: u32,
    /// Trust this CA (PEM) as well as the system's roots.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// The name sent as SNI and checked against the certificate, when it is not the address' host
    /// (a server reached by IP, or through a tunnel).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept an untrusted chain or another name (self-signed test servers); expiry is still
    /// checked and reported.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn default_min_days_valid() -> u32 {
    14
}

/// What TLS probes share: the system's roots, read once, and one client setup per `caFile`,
/// built on first use (building one parses every root).
pub struct Trust {
    provider: Arc<CryptoProvider>,
    /// Shared by the setup without `caFile` and its verifier: one copy of the roots in memory
    /// (≈ 0.19 MB for Debian's 144 roots: 66 KB of names and keys in the anchors, the same
    /// again in the expiries' keys) where the anchors were held three times and the expiries
    /// twice (≈ 0.46 MB).
    system_roots: Arc<Roots>,
    /// By `caFile` only: `insecureSkipVerify` changes how the chain is judged after the
    /// handshake, not the handshake itself, so both settings share a setup.
    setups: Mutex<HashMap<Option<PathBuf>, Arc<Setup>>>,
}

/// A client config whose handshake accepts any chain, and the verifier that judges the chain.
pub(super) struct Setup {
    /// The `caFile` as it was read: a file rewritten since (its modification time or length
    /// changed, as when an internal CA is rotated) is read again at the next probe.
    ca_file_stamp: Option<FileStamp>,
    config: Arc<ClientConfig>,
    /// Err when there is no root at all to build a verifier from: every chain is then untrusted.
    verifier: Result<Arc<WebPkiServerVerifier>, String>,
    /// The verifier's roots, to find the path it accepted (and the expiry of its root).
    roots: Arc<Roots>,
    algorithms: WebPkiSupportedAlgorithms,
    /// The chains this setup trusted, by the server name they were judged for.
    trusted: Mutex<HashMap<String, TrustedChain>>,
}

/// A chain judged trusted for a server name, and the earliest expiry on the path accepted.
///
/// A server serves the same chain at every handshake, and judging it again (two WebPKI path
/// builds, each verifying every signature on the path) was a quarter of statusd's CPU at 1,000
/// TLS assets × 1 s (perf; the handshake's own signature, which proves the server holds the
/// key, is verified at every probe all the same). The verdict cannot change while the chain,
/// the name and the roots are the same and every certificate on the path is still within its
/// validity: this setup's roots never change, revocation is not checked, and a chain already
/// valid stays valid until the earliest `notAfter` on its path, the expiry kept here (it may be
/// the root's, which is earlier still: judged again from then on). As Chromium's
/// `CachingCertVerifier` keeps verdicts by chain and host name.
struct TrustedChain {
    /// SHA-256 over the chain as served (each certificate's length, then its DER): another chain
    /// for the name is judged afresh.
    digest: [u8; 32],
    expiry: Expiry,
}

/// Names whose verdict a setup keeps: one per TLS asset that uses it. Past it, the oldest
/// verdicts are not told apart from the newest: all are dropped and judged again, which costs
/// a path build each, not a wrong verdict.
const TRUSTED_NAMES: usize = 100_000;

fn chain_digest<'a>(chain: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for cert in chain {
        hasher.update((cert.len() as u64).to_be_bytes());
        hasher.update(cert.as_ref());
    }
    hasher.finalize().into()
}

/// Trusted roots, and the expiry of each: a trust anchor keeps only a root's name and key.
/// Cloned, it shares the store until a root is added (a `caFile` setup's copy of the system's).
#[derive(Clone)]
struct Roots {
    /// Shared with the verifier built on it (`WebPkiServerVerifier` takes an `Arc`).
    store: Arc<RootCertStore>,
    /// By the anchor's subject and key. Two roots with both equal (a root reissued with a new
    /// validity) keep the later expiry: a verifier accepts either.
    expiries: HashMap<(Vec<u8>, Vec<u8>), Expiry>,
}

impl Roots {
    fn empty() -> Roots {
        Roots { store: Arc::new(RootCertStore::empty()), expiries: HashMap::new() }
    }

    fn add(&mut self, der: CertificateDer<'_>) -> Result<(), webpki::Error> {
        let anchor = webpki::anchor_from_trusted_cert(&der)?.to_owned();
        let parsed = x509_parser::parse_x509_certificate(&der).ok().and_then(|(_, cert)| {
            let at = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
            Some((at, cert.subject().to_string()))
        });
        if let Some((at, subject)) = parsed {
            let key = (anchor.subject.to_vec(), anchor.subject_public_key_info.to_vec());
            let later = self.expiries.get(&key).is_none_or(|known| known.at < at);
            if later {
                self.expiries.insert(key, Expiry { at, chain_subject: Some(subject) });
            }
        }
        Arc::make_mut(&mut self.store).roots.push(anchor);
        Ok(())
    }

    fn expiry_of(&self, anchor: &rustls::pki_types::TrustAnchor<'_>) -> Option<&Expiry> {
        self.expiries.get(&(anchor.subject.to_vec(), anchor.subject_public_key_info.to_vec()))
    }
}

impl Default for Trust {
    fn default() -> Self {
        Self::new()
    }
}

impl Trust {
    /// Reads the system's roots and builds the setup without `caFile` now, once: both read files
    /// and parse every root (tens of milliseconds), so statusd does it at start, off the runtime
    /// threads, and no probe waits on the certificate store. A system without roots is only a
    /// warning: TLS probes then trust their `caFile`.
    pub fn new() -> Self {
        let trust = Trust {
            provider: Arc::new(provider()),
            system_roots: Arc::new(load_system_roots()),
            setups: Mutex::new(HashMap::new()),
        };
        if let Ok(setup) = trust.build(None) {
            trust.setups.lock().insert(None, Arc::new(setup));
        }
        trust
    }

    /// The setup for `caFile` (or for the system's roots alone), built again when the file has
    /// changed since it was read. Errors: the file cannot be read or holds no usable certificate
    /// (`caFile: …`).
    pub(super) fn setup(&self, ca_file: Option<&Path>) -> Result<Arc<Setup>, String> {
        let key = ca_file.map(Path::to_path_buf);
        // One `stat` per probe of an asset with `caFile`: a microsecond beside a TLS handshake.
        let stamp = ca_file.and_then(file_stamp);
        if let Some(setup) = self.setups.lock().get(&key)
            && setup.ca_file_stamp == stamp
        {
            return Ok(setup.clone());
        }
        // Built outside the lock: two probes racing here build twice, and nothing waits on a file read.
        let setup = Arc::new(self.build(ca_file)?);
        self.setups.lock().insert(key, setup.clone());
        Ok(setup)
    }

    fn build(&self, ca_file: Option<&Path>) -> Result<Setup, String> {
        // Taken before the read: a rewrite during it is noticed at the next probe.
        let ca_file_stamp = ca_file.and_then(file_stamp);
        let roots = match ca_file {
            None => Arc::clone(&self.system_roots),
            Some(path) => {
                let mut roots = Roots::clone(&self.system_roots);
                for der in read_ca_file(path).map_err(|problem| format!("caFile: {problem}"))? {
                    roots.add(CertificateDer::from(der)).map_err(|e| format!("caFile: {e}"))?;
                }
                Arc::new(roots)
            }
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots.store), self.provider.clone())
            .build()
            .map_err(|e| match e {
                rustls::client::VerifierBuilderError::NoRootAnchors => {
                    "no root certificates to check it against (the system store is empty: set caFile)".to_string()
                }
                other => other.to_string(),
            });
        let capture = HandshakeVerifier { algorithms: self.provider.signature_verification_algorithms, judge: None };
        Ok(Setup {
            ca_file_stamp,
            config: Arc::new(self.client_config(Arc::new(capture))?),
            verifier,
            roots,
            algorithms: self.provider.signature_verification_algorithms,
            trusted: Mutex::new(HashMap::new()),
        })
    }

    /// The rustls client config of the HTTP probe's `https://` requests, given to reqwest: the
    /// roots, `caFile` and kept verdicts of the `tls` probe, ALPN `h2` then `http/1.1` (what
    /// reqwest offers on its own), and no session resumption.
    ///
    /// reqwest's own config resumes the sessions a server offers (RFC 8446 section 2.2), and a
    /// resumed handshake presents no certificate: a server that starts serving an expired,
    /// untrusted or wrong-name certificate kept passing the HTTP probe until its tickets lapsed
    /// (5 minutes on nginx's defaults, up to 7 days), while every new visitor was refused. Go's
    /// client, which blackbox_exporter runs, keeps no sessions either. With `insecureSkipVerify`
    /// any chain is accepted; the handshake's signature is still verified.
    ///
    /// Errors: only if the provider supports neither TLS 1.2 nor 1.3 (aws-lc-rs supports both).
    pub(super) fn https_config(&self, setup: &Arc<Setup>, insecure_skip_verify: bool) -> Result<ClientConfig, String> {
        let judge = (!insecure_skip_verify).then(|| setup.clone());
        let mut config = self.client_config(Arc::new(HandshakeVerifier { algorithms: setup.algorithms, judge }))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// TLS 1.2 and 1.3 with this provider and `verifier`, no client certificate, no resumption:
    /// a resumed session skips the certificate, and every probe must see the chain served now.
    fn client_config(&self, verifier: Arc<HandshakeVerifier>) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
}

/// A file's modification time and length, or None if it cannot be read.
type FileStamp = (std::time::SystemTime, u64);

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// aws-lc-rs with AES-128-GCM offered first, as Chrome, Firefox and Go's client offer it, where
/// rustls offers AES-256-GCM with SHA-384 first. Most servers follow the client's order (nginx's
/// and rustls' default), so a probe negotiates what visitors negotiate; and SHA-384's transcript
/// hash and key schedule run without the SHA extensions that SHA-256 has on x86 and ARM: 8 % of
/// statusd's CPU at 1,000 HTTPS assets × 1 s (perf). Every suite is still offered.
fn provider() -> CryptoProvider {
    use rustls::CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS13_AES_128_GCM_SHA256,
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // A stable sort: the AES-128-GCM suites first, the rest in rustls' order.
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            TLS13_AES_128_GCM_SHA256 | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// The system's roots as rustls-native-certs finds them (it honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`). Unreadable entries are logged, not fatal: `caFile` may be all a probe needs.
fn load_system_roots() -> Roots {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot read some of the system's root certificates");
    }
    let mut roots = Roots::empty();
    let total = found.certs.len();
    let ignored = found.certs.into_iter().filter_map(|der| roots.add(der).err()).count();
    if ignored > 0 {
        tracing::debug!(ignored, "skipped system root certificates rustls cannot use");
    }
    if total == ignored {
        tracing::warn!("no system root certificates found: TLS probes trust only their caFile");
    }
    roots
}

/// The verifier of every handshake a probe makes. Handshake signatures are always checked, with
/// the provider's algorithms as rustls' WebPki verifier checks them: a server must prove it
/// holds the key of the certificate it presents. The chain:
/// - `judge: None` (the `tls` probe, and `insecureSkipVerify`): any chain is accepted, so that
///   the handshake finishes and an untrusted or expired chain is still seen and its expiry
///   reported; the `tls` probe judges it after the handshake, because a verifier shared by
///   concurrent probes has no per-connection place to leave its verdict;
/// - `judge: Some(setup)` (the HTTP probe's `https://` requests): judged during the handshake,
///   as any client judges it, by the setup's WebPki verifier with its kept verdicts
///   ([`TrustedChain`]), so a `tls` and an `http` asset of the same server share them.
struct HandshakeVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    judge: Option<Arc<Setup>>,
}

impl std::fmt::Debug for HandshakeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeVerifier").field("judge", &self.judge.is_some()).finish_non_exhaustive()
    }
}

impl ServerCertVerifier for HandshakeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(setup) = &self.judge else {
            return Ok(ServerCertVerified::assertion());
        };
        match setup.verify(end_entity, intermediates, server_name) {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(Refusal::NoRoots(problem)) => {
                Err(rustls::Error::General(format!("certificate not trusted: {problem}")))
            }
            Err(Refusal::Refused(error)) => Err(error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl TlsSpec {
    /// Ten years: the longest-lived certificates (private CAs) are issued for about that long.
    pub const BOUNDS: &'static [Bound] = &[Bound::new("minDaysValid", 0, 3650)];

    pub(super) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        validate_host_port("tls", address, path, report);
        match &self.server_name {
            Some(name) if name.is_empty() => {
                report
                    .problem(format!("{path}.serverName"), "must not be empty (leave it out to use the address' host)");
            }
            Some(name) if ServerName::try_from(name.as_str()).is_err() => {
                report.problem(format!("{path}.serverName"), format!("{name:?} is not a host name or IP address"));
            }
            Some(_) => {}
            None => {
                // Only for an address that has a port: one without is already reported above.
                let host = host_of(address);
                if address.contains(':') && !host.is_empty() && ServerName::try_from(host).is_err() {
                    report.problem(
                        format!("{path}.address"),
                        format!("{host:?} is not a name a certificate can be checked against: set serverName"),
                    );
                }
            }
        }
        if let Some(ca_file) = &self.ca_file
            && let Err(problem) = read_ca_file(ca_file)
        {
            report.problem(format!("{path}.caFile"), problem);
        }
    }

    pub(super) async fn check(&self, address: &str, trust: &Trust, source: Option<std::net::IpAddr>) -> ProbeOutcome {
        let name = self.server_name.as_deref().unwrap_or_else(|| host_of(address));
        let server_name = match ServerName::try_from(name.to_string()) {
            Ok(server_name) => server_name,
            Err(_) => return ProbeOutcome::down(None, format!("{name:?} is not a host name or IP address")),
        };
        let setup = match trust.setup(self.ca_file.as_deref()) {
            Ok(setup) => setup,
            Err(problem) => return ProbeOutcome::down(None, problem),
        };

        let (stream, mut facts, mut timings) = match connect(address, source).await {
            Ok(connected) => connected,
            Err(outcome) => return outcome,
        };

        let handshake_started = Instant::now();
        let connector = TlsConnector::from(setup.config.clone());
        let tls = match connector.connect(server_name.clone(), stream).await {
            Ok(tls) => tls,
            Err(error) => {
                let detail = ProbeDetail { timings: Some(timings), ..ProbeDetail::default() };
                return ProbeOutcome::down(None, describe_handshake_error(&error))
                    .with_facts(facts)
                    .with_detail(detail);
            }
        };
        timings.tls_ms = Some(millis_since(handshake_started));
        let chain: Vec<CertificateDer<'static>> =
            tls.get_ref().1.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect();
        close_after_the_server(tls).await;

        let mut detail = ProbeDetail { timings: Some(timings), ..ProbeDetail::default() };
        let trusted = if self.insecure_skip_verify { Ok(None) } else { setup.judge(&chain, &server_name) };
        // The path the verifier accepted when it did; otherwise all the server sent.
        let expiry = match &trusted {
            Ok(Some(path)) => Some(path.clone()),
            _ => earliest_expiry(&chain),
        };
        let Some(expiry) = expiry else {
            let message = if chain.is_empty() {
                "the server sent no certificate"
            } else {
                "cannot read the expiry of the server's certificate"
            };
            return ProbeOutcome::down(None, message).with_facts(facts).with_detail(detail);
        };
        let now = Utc::now();
        let seconds_left = (expiry.at - now).num_seconds();
        facts.certificate_expiration_seconds = Some(seconds_left);
        detail.certificate_expires_at = Some(expiry.at);

        let message = if seconds_left <= 0 {
            let mut message = format!("{} expired {} ago", expiry.which(), span(-seconds_left));
            // Not repeating the expiry the verifier also found, but naming any other problem.
            if let Err(Untrusted::Other(problem)) = trusted {
                message = format!("{message}; {problem}");
            }
            Some(message)
        } else if let Err(untrusted) = trusted {
            Some(untrusted.into_message())
        } else if seconds_left < i64::from(self.min_days_valid) * SECONDS_PER_DAY {
            Some(format!("{} expires in {} (minDaysValid {})", expiry.which(), span(seconds_left), self.min_days_valid))
        } else {
            None
        };
        let outcome = match message {
            Some(message) => ProbeOutcome::down(None, message),
            None => ProbeOutcome::up(None),
        };
        outcome.with_facts(facts).with_detail(detail)
    }
}

/// Why a chain is not trusted; an expiry is told apart, since the probe reports it on its own.
enum Untrusted {
    Expired(String),
    Other(String),
}

impl Untrusted {
    fn into_message(self) -> String {
        match self {
            Untrusted::Expired(message) | Untrusted::Other(message) => message,
        }
    }
}

/// Why [`Setup::verify`] does not trust a chain.
enum Refusal {
    /// There is no root to judge it against; why.
    NoRoots(String),
    /// rustls' WebPki verifier refused it.
    Refused(rustls::Error),
}

impl Setup {
    /// The verdict a normal client would have reached on this chain and, when it trusts it, the
    /// earliest expiry on the path it accepted (None if that path cannot be rebuilt).
    fn judge(
        &self,
        chain: &[CertificateDer<'static>],
        server_name: &ServerName<'_>,
    ) -> Result<Option<Expiry>, Untrusted> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(Untrusted::Other("the server sent no certificate".into()));
        };
        self.verify(end_entity, intermediates, server_name).map_err(|refusal| match refusal {
            Refusal::NoRoots(problem) => Untrusted::Other(format!("certificate not trusted: {problem}")),
            Refusal::Refused(error) => describe_untrusted(&error),
        })
    }

    /// The WebPki verifier's verdict on the chain for `server_name` and, when it trusts it, the
    /// earliest expiry on the path it accepted. A verdict of trust is kept for the name
    /// ([`TrustedChain`]) and given again for the same chain, before any verifier is asked; a
    /// refusal forgets it.
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
    ) -> Result<Option<Expiry>, Refusal> {
        let name = server_name.to_str();
        let digest = chain_digest(std::iter::once(end_entity).chain(intermediates));
        if let Some(known) = self.trusted.lock().get(name.as_ref())
            && known.digest == digest
            && Utc::now() < known.expiry.at
        {
            return Ok(Some(known.expiry.clone()));
        }
        let verifier = self.verifier.as_ref().map_err(|problem| Refusal::NoRoots(problem.clone()))?;
        let now = UnixTime::now();
        match verifier.verify_server_cert(end_entity, intermediates, server_name, &[], now) {
            Ok(_) => {
                let expiry = self.verified_path_expiry(end_entity, intermediates, now);
                if let Some(expiry) = &expiry {
                    let mut trusted = self.trusted.lock();
                    if trusted.len() >= TRUSTED_NAMES {
                        trusted.clear();
                    }
                    trusted.insert(name.into_owned(), TrustedChain { digest, expiry: expiry.clone() });
                }
                Ok(expiry)
            }
            Err(error) => {
                self.trusted.lock().remove(name.as_ref());
                Err(Refusal::Refused(error))
            }
        }
    }

    /// The earliest expiry on the path from `end_entity` to a trusted root that WebPki builds,
    /// the root included: the path rustls' verifier has just accepted, since it builds it the
    /// same way (same roots, same algorithms, server-auth usage, no revocation lists). rustls
    /// does not return the path, so it is built again here.
    fn verified_path_expiry(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Option<Expiry> {
        let cert = webpki::EndEntityCert::try_from(end_entity).ok()?;
        let path = cert
            .verify_for_usage(
                self.algorithms.all,
                &self.roots.store.roots,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .ok()?;
        let mut certs = vec![end_entity.clone()];
        certs.extend(path.intermediate_certificates().map(|intermediate| intermediate.der()));
        let on_path = earliest_expiry(&certs)?;
        match self.roots.expiry_of(path.anchor()) {
            Some(root) if root.at < on_path.at => Some(root.clone()),
            _ => Some(on_path),
        }
    }
}

fn describe_untrusted(error: &rustls::Error) -> Untrusted {
    let rustls::Error::InvalidCertificate(error) = error else {
        return Untrusted::Other(format!("certificate not trusted: {error}"));
    };
    match error {
        CertificateError::NotValidForNameContext { expected, presented } => {
            let names = if presented.is_empty() {
                "no host name".to_string()
            } else {
                let mut shown: Vec<&str> = presented.iter().take(NAMES_SHOWN).map(|n| plain_name(n)).collect();
                let more = presented.len().saturating_sub(NAMES_SHOWN);
                let more_text = format!("{more} more");
                if more > 0 {
                    shown.push(&more_text);
                }
                shown.join(", ")
            };
            Untrusted::Other(format!(
                "certificate is for another name: NotValidForName {:?} (it is for {names})",
                expected.to_str()
            ))
        }
        CertificateError::NotValidForName => {
            Untrusted::Other("certificate is for another name: NotValidForName".into())
        }
        CertificateError::ExpiredContext { time, not_after } => {
            let ago = i64::try_from(time.as_secs().saturating_sub(not_after.as_secs())).unwrap_or(i64::MAX);
            Untrusted::Expired(format!("a certificate in the chain expired {} ago", span(ago)))
        }
        CertificateError::Expired => Untrusted::Expired("a certificate in the chain expired".into()),
        CertificateError::NotValidYetContext { not_before, .. } => {
            let from = i64::try_from(not_before.as_secs())
                .ok()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .map_or_else(|| "the future".to_string(), |at| at.to_rfc3339());
            Untrusted::Other(format!("certificate not valid yet: valid from {from}"))
        }
        other => Untrusted::Other(format!("certificate not trusted: {other}")),
    }
}

/// `DnsName("a.example")` as `a.example`: the names as an operator writes them.
fn plain_name(presented: &str) -> &str {
    for wrapper in ["DnsName(\"", "IpAddress(", "UniformResourceIdentifier(\""] {
        if let Some(inner) = presented.strip_prefix(wrapper) {
            return inner.trim_end_matches(')').trim_end_matches('"');
        }
    }
    presented
}

/// The earliest `notAfter` of a chain, and which certificate it belongs to.
#[derive(Clone)]
struct Expiry {
    at: DateTime<Utc>,
    /// The subject, when it is not the server's own certificate (an expired intermediate is a
    /// different fix than an expired leaf).
    chain_subject: Option<String>,
}

impl Expiry {
    fn which(&self) -> String {
        match &self.chain_subject {
            None => "certificate".into(),
            Some(subject) => format!("chain certificate {subject:?}"),
        }
    }
}

fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<Expiry> {
    chain
        .iter()
        .enumerate()
        .filter_map(|(i, der)| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            let at = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
            Some(Expiry { at, chain_subject: (i > 0).then(|| cert.subject().to_string()) })
        })
        .min_by_key(|expiry| expiry.at)
}

/// A duration as people say it: whole days, else hours, else minutes (rounded down, so that a
/// certificate failing `minDaysValid 14` never reads "14 days").
fn span(seconds: i64) -> String {
    let (count, unit) = if seconds >= SECONDS_PER_DAY {
        (seconds / SECONDS_PER_DAY, "day")
    } else if seconds >= 3600 {
        (seconds / 3600, "hour")
    } else if seconds >= 60 {
        (seconds / 60, "minute")
    } else {
        return "less than a minute".into();
    };
    if count == 1 { format!("1 {unit}") } else { format!("{count} {unit}s") }
}

/// Words an operator knows for a failed handshake.
fn describe_handshake_error(error: &std::io::Error) -> String {
    if let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                format!("TLS handshake failed: {tls} (does this port speak TLS?)")
            }
            _ => format!("TLS handshake failed: {tls}"),
        };
    }
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => "TLS handshake failed: the server closed the connection".into(),
        _ => format!("TLS handshake failed: {}", describe_connect_error(error)),
    }
}

/// The certificates (DER) of a PEM file, or what is wrong with it.
pub fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let der = item.map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
        // Checked now: a certificate that cannot be a root would otherwise be ignored at probe
        // time, and the probe would fail with "not trusted" for no visible reason.
        if let Err(e) = RootCertStore::empty().add(der.clone()) {
            return Err(format!("{}: certificate {} cannot be a root ({e})", path.display(), i + 1));
        }
        certs.push(der.to_vec());
    }
    if certs.is_empty() {
        return Err(format!("{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(certs)
}

/// The `notAfter` of a DER certificate, None when it cannot be parsed.
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_round_down() {
        assert_eq!(span(5 * SECONDS_PER_DAY + 10), "5 days");
        assert_eq!(span(SECONDS_PER_DAY), "1 day");
        assert_eq!(span(SECONDS_PER_DAY - 1), "23 hours");
        assert_eq!(span(90), "1 minute");
        assert_eq!(span(5), "less than a minute");
    }

    #[test]
    fn presented_names_read_plainly() {
        assert_eq!(plain_name("DnsName(\"other.example\")"), "other.example");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    /// The setup without `caFile` and its verifier keep the system's roots, not copies of them;
    /// a `caFile` setup copies them once, to add its own.
    #[test]
    fn the_system_roots_are_held_once() {
        let trust = Trust::new();
        let plain = trust.setup(None).expect("the setup without caFile");
        assert!(Arc::ptr_eq(&plain.roots, &trust.system_roots));
        // The system's roots, the verifier built on them (none on a system without roots), and
        // nothing else.
        let holders = 1 + usize::from(plain.verifier.is_ok());
        assert_eq!(Arc::strong_count(&trust.system_roots.store), holders);

        let (_, _, ca_file) = setup_and_chain("ca.example");
        let with_ca = trust.setup(Some(ca_file.path())).expect("the setup with caFile");
        assert!(!Arc::ptr_eq(&with_ca.roots.store, &trust.system_roots.store));
        assert_eq!(with_ca.roots.store.roots.len(), trust.system_roots.store.roots.len() + 1);
        assert_eq!(Arc::strong_count(&trust.system_roots.store), holders);
    }

    /// A setup trusting a fresh CA (and no system root), and a chain that CA signed for `name`.
    fn setup_and_chain(name: &str) -> (Setup, Vec<CertificateDer<'static>>, tempfile::NamedTempFile) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
        let ca_file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(ca_file.path(), ca_pem).expect("write the CA");
        let key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec![name.to_string()])
            .expect("leaf params")
            .signed_by(&key, &Issuer::new(ca, ca_key))
            .expect("leaf certificate");
        let trust = Trust {
            provider: Arc::new(provider()),
            system_roots: Arc::new(Roots::empty()),
            setups: Mutex::new(HashMap::new()),
        };
        let setup = trust.build(Some(ca_file.path())).expect("setup");
        (setup, vec![leaf.der().clone()], ca_file)
    }

    fn name(text: &str) -> ServerName<'static> {
        ServerName::try_from(text.to_string()).expect("a server name")
    }

    /// The verdict on a chain served again is the one already reached: no verifier is asked
    /// (here there is none left to ask).
    #[test]
    fn a_trusted_chain_served_again_is_not_judged_again() {
        let (mut setup, chain, _ca) = setup_and_chain("a.example");
        let first = setup.judge(&chain, &name("a.example")).ok().flatten().expect("trusted, with an expiry");
        setup.verifier = Err("gone".into());
        let again = setup.judge(&chain, &name("a.example")).ok().flatten().expect("the verdict kept");
        assert_eq!(again.at, first.at);
        assert!(setup.judge(&chain, &name("b.example")).is_err(), "another name is judged afresh");
    }

    /// Another chain for the name, or the kept verdict past the path's expiry, is judged
    /// afresh; an untrusted chain forgets the verdict.
    #[test]
    fn another_chain_or_an_expired_verdict_is_judged_afresh() {
        let (setup, chain, _ca) = setup_and_chain("a.example");
        let (_, other, _other_ca) = setup_and_chain("a.example");
        assert!(setup.judge(&chain, &name("a.example")).is_ok());
        assert!(setup.judge(&other, &name("a.example")).is_err(), "another CA's chain for the same name");
        assert!(!setup.trusted.lock().contains_key("a.example"), "the untrusted chain forgot the verdict");

        assert!(setup.judge(&chain, &name("a.example")).is_ok());
        let digest = chain_digest(&chain);
        let past = Expiry { at: Utc::now() - chrono::Duration::seconds(1), chain_subject: None };
        setup.trusted.lock().insert("a.example".into(), TrustedChain { digest, expiry: past });
        let judged = setup.judge(&chain, &name("a.example")).ok().flatten().expect("trusted");
        assert!(judged.at > Utc::now(), "judged again, not the kept past expiry: {}", judged.at);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert_eq!(not_after(b"not a certificate"), None);
        assert!(earliest_expiry(&[CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01])]).is_none());
    }
}
