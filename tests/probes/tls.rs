//! The TLS probe (and the HTTPS side of the HTTP probe) against tokio-rustls servers on loopback,
//! with certificates made here: a test CA and leaves that are valid, expire soon, have expired,
//! or name another host.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde_json::json;
use statusd::ProbeContext;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::common::{Sockets, asset, probe_once, problems};

const DAY: i64 = 24 * 60 * 60;

fn unix_now() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970");
    i64::try_from(elapsed.as_secs()).expect("seconds fit")
}

/// A test CA, with its certificate in a PEM file for `caFile`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem_file: tempfile::NamedTempFile,
}

/// A leaf certificate and its key, as a server serves them.
struct Leaf {
    der: CertificateDer<'static>,
    key: Vec<u8>,
    not_after: DateTime<Utc>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        let mut pem_file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut pem_file, cert.pem().as_bytes()).expect("write CA");
        Ca { issuer: Issuer::new(params, key), pem_file }
    }

    fn path(&self) -> String {
        self.pem_file.path().display().to_string()
    }

    /// A leaf for `names` that expires `expires_in` seconds from now (negative: already expired).
    fn leaf(&self, names: &[&str], expires_in: i64) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = unix_now();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let seconds = |at: i64| Duration::from_secs(u64::try_from(at).expect("after 1970"));
        params.not_before = epoch + seconds(now + expires_in.min(0) - 30 * DAY);
        params.not_after = epoch + seconds(now + expires_in);
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        Leaf {
            der: cert.der().clone(),
            key: key.serialize_der(),
            not_after: DateTime::from_timestamp(now + expires_in, 0).expect("a date"),
        }
    }
}

fn acceptor(leaf: &Leaf) -> TlsAcceptor {
    chain_acceptor(vec![leaf.der.clone()], &leaf.key)
}

/// Serves `chain` (the leaf first) with the leaf's `key`.
fn chain_acceptor(chain: Vec<CertificateDer<'static>>, key: &[u8]) -> TlsAcceptor {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(config))
}

/// A TLS server that completes the handshake and closes; records the SNI each client sent.
struct Server {
    port: u16,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    /// The cipher suite of each handshake, in the same order.
    suites: Arc<Mutex<Vec<Option<rustls::CipherSuite>>>>,
}

impl Server {
    /// The SNI of the first `count` handshakes: the server finishes its side after the client.
    async fn sni(&self, count: usize) -> Vec<Option<String>> {
        for _ in 0..100 {
            if self.sni.lock().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.sni.lock().clone()
    }
}

async fn serve(leaf: &Leaf) -> Server {
    serve_with(acceptor(leaf)).await
}

async fn serve_with(acceptor: TlsAcceptor) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sni = Arc::new(Mutex::new(Vec::new()));
    let suites = Arc::new(Mutex::new(Vec::new()));
    let (seen, suites_seen) = (sni.clone(), suites.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let (seen, suites_seen) = (seen.clone(), suites_seen.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let connection = tls.get_ref().1;
                    suites_seen.lock().push(connection.negotiated_cipher_suite().map(|suite| suite.suite()));
                    seen.lock().push(connection.server_name().map(str::to_string));
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Server { port, sni, suites }
}

/// An HTTPS server answering 200 to everything.
async fn serve_https(leaf: &Leaf) -> u16 {
    serve_https_with(acceptor(leaf)).await
}

async fn serve_https_with(acceptor: TlsAcceptor) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new("ok".to_string()))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn tls_asset(address: String, extra: serde_json::Value) -> serde_json::Value {
    let mut fields = json!({"assetType": "tls", "address": address});
    for (key, value) in extra.as_object().expect("an object") {
        fields[key] = value.clone();
    }
    fields
}

#[tokio::test]
async fn a_valid_certificate_succeeds_and_reports_its_expiry() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], 90 * DAY);
    let server = serve(&leaf).await;
    let result = probe_once(tls_asset(format!("localhost:{}", server.port), json!({"caFile": ca.path()}))).await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(result.message, None);
    let expires_at = result.detail.certificate_expires_at.expect("the expiry");
    assert_eq!(expires_at, leaf.not_after);
    assert_eq!((expires_at - Utc::now()).num_days(), 89);
    let timings = result.detail.timings.expect("timings");
    assert!(timings.connect_ms.is_some() && timings.tls_ms.is_some(), "{timings:?}");
    // SNI is the address' host.
    assert_eq!(server.sni(1).await, [Some("localhost".to_string())]);
}

#[tokio::test]
async fn a_server_that_follows_the_client_negotiates_aes_128_gcm_as_with_browsers() {
    let ca = Ca::new("statusd test CA");
    let server = serve(&ca.leaf(&["localhost"], 90 * DAY)).await;
    let result = probe_once(tls_asset(format!("localhost:{}", server.port), json!({"caFile": ca.path()}))).await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(server.sni(1).await.len(), 1);
    assert_eq!(*server.suites.lock(), [Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)]);
}

#[tokio::test]
async fn an_ip_address_is_checked_against_the_certificate() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], 90 * DAY);
    let server = serve(&leaf).await;
    let result = probe_once(tls_asset(format!("127.0.0.1:{}", server.port), json!({"caFile": ca.path()}))).await;
    assert!(result.success, "{:?}", result.message);
    // rustls sends no SNI for an IP address, as RFC 6066 asks.
    assert_eq!(server.sni(1).await, [None]);
}

#[tokio::test]
async fn a_certificate_expiring_soon_fails() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost"], 5 * DAY + 3600);
    let server = serve(&leaf).await;
    let address = format!("localhost:{}", server.port);
    let result = probe_once(tls_asset(address.clone(), json!({"caFile": ca.path()}))).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("certificate expires in 5 days (minDaysValid 14)"));
    assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after));

    let result = probe_once(tls_asset(address, json!({"caFile": ca.path(), "minDaysValid": 5}))).await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn an_expired_certificate_fails_even_when_verification_is_skipped() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost"], -3 * DAY);
    let server = serve(&leaf).await;
    let address = format!("localhost:{}", server.port);
    for extra in [json!({"caFile": ca.path()}), json!({"insecureSkipVerify": true})] {
        let result = probe_once(tls_asset(address.clone(), extra.clone())).await;
        assert!(!result.success, "{extra}");
        assert_eq!(result.message.as_deref(), Some("certificate expired 3 days ago"), "{extra}");
        assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after), "{extra}");
    }
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_unless_verification_is_skipped() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["other.example"], 90 * DAY);
    let server = serve(&leaf).await;
    let address = format!("localhost:{}", server.port);
    let result = probe_once(tls_asset(address.clone(), json!({"caFile": ca.path()}))).await;
    assert!(!result.success);
    assert_eq!(
        result.message.as_deref(),
        Some(r#"certificate is for another name: NotValidForName "localhost" (it is for other.example)"#)
    );

    let result = probe_once(tls_asset(address.clone(), json!({"insecureSkipVerify": true}))).await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after));

    // serverName checks (and sends) the name the certificate is for.
    let result = probe_once(tls_asset(address, json!({"caFile": ca.path(), "serverName": "other.example"}))).await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(server.sni(3).await.last(), Some(&Some("other.example".to_string())));
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_not_trusted() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost"], 90 * DAY);
    let server = serve(&leaf).await;
    let address = format!("localhost:{}", server.port);

    // Without caFile only the system's roots are trusted (the message differs when it has none).
    let result = probe_once(tls_asset(address.clone(), json!({}))).await;
    assert!(!result.success);
    let message = result.message.expect("a message");
    assert!(message.starts_with("certificate not trusted: "), "{message}");
    assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after));

    let other = Ca::new("another CA");
    let result = probe_once(tls_asset(address, json!({"caFile": other.path()}))).await;
    assert_eq!(result.message.as_deref(), Some("certificate not trusted: UnknownIssuer"));
}

#[tokio::test]
async fn a_server_that_never_speaks_tls_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let result = probe_once(tls_asset(address, json!({}))).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("timeout after 1s"));
}

#[tokio::test]
async fn a_server_that_answers_in_plain_text_fails_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let result = probe_once(tls_asset(address, json!({}))).await;
    assert!(!result.success);
    let message = result.message.expect("a message");
    assert!(message.starts_with("TLS handshake failed: "), "{message}");
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let result = probe_once(tls_asset(address, json!({}))).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("connection refused"));
}

#[test]
fn settings_are_checked_at_load() {
    let tls = asset(json!({"assetType": "tls", "address": "example.com:443"}));
    let statusd::ProbeSpec::Tls(spec) = tls.probe else { panic!("a tls asset") };
    assert_eq!(spec.min_days_valid, 14);
    assert!(!spec.insecure_skip_verify);

    assert_eq!(
        problems(json!({"assetType": "tls", "address": "example.com"})),
        [r#"assets[0].address: "example.com" has no port: write host:port"#]
    );

    let missing = problems(json!({"assetType": "tls", "address": "example.com:443", "caFile": "/no/such/ca.pem"}));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].starts_with("assets[0].caFile: cannot read /no/such/ca.pem: "), "{missing:?}");

    let mut empty = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut empty, b"no certificate here\n").expect("write");
    let path = empty.path().display().to_string();
    let no_certificate = problems(json!({"assetType": "tls", "address": "example.com:443", "caFile": path}));
    assert_eq!(no_certificate.len(), 1, "{no_certificate:?}");
    assert!(no_certificate[0].starts_with("assets[0].caFile: ") && no_certificate[0].contains("holds no certificate"));

    let bad_name = problems(json!({"assetType": "tls", "address": "example.com:443", "serverName": "not a name"}));
    assert_eq!(bad_name, [r#"assets[0].serverName: "not a name" is not a host name or IP address"#]);
}

#[tokio::test]
async fn https_reports_the_leaf_expiry() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], 90 * DAY);
    let port = serve_https(&leaf).await;
    let result = probe_once(json!({
        "assetType": "http",
        "address": format!("https://localhost:{port}/"),
        "caFile": ca.path(),
    }))
    .await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(result.code, Some(200));
    assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after));
}

#[tokio::test]
async fn https_with_insecure_skip_verify_still_reports_an_expired_certificate() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], -3 * DAY);
    let port = serve_https(&leaf).await;
    let address = format!("https://localhost:{port}/");

    let result = probe_once(json!({"assetType": "http", "address": address, "caFile": ca.path()})).await;
    assert!(!result.success, "an expired certificate must fail verification");

    let result = probe_once(json!({"assetType": "http", "address": address, "insecureSkipVerify": true})).await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_statusd_exports_the_days_left_as_a_metric() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost"], 5 * DAY);
    let server = serve(&leaf).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let asset = tls_asset(
        format!("localhost:{}", server.port),
        json!({"id": "cert", "caFile": ca.path(), "intervalSeconds": 1, "timeoutSeconds": 1}),
    );
    std::fs::write(path("manifest.json"), json!({"assets": [asset]}).to_string()).expect("manifest");
    std::fs::write(path("notifiers.json"), "{}").expect("notifiers");
    std::fs::write(path("statusd.toml"), "").expect("settings");
    let args: Vec<String> = [
        "statusd",
        "--config",
        &path("statusd.toml"),
        "--manifest",
        &path("manifest.json"),
        "--notifiers",
        &path("notifiers.json"),
        "--db",
        &format!("sqlite://{}", path("statusd.db")),
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (_, settings) = statusd::Settings::from_args(args, &Default::default()).expect("settings");
    let app = statusd::App::build(settings).await.expect("statusd starts");
    let metrics_url = format!("http://{}/metrics", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));

    let prefix = "statusd_tls_cert_expiry_seconds{asset=\"cert\"} ";
    let mut seconds_left = None;
    for _ in 0..100 {
        let text = reqwest::get(&metrics_url).await.expect("metrics").text().await.expect("text");
        seconds_left = text.lines().find_map(|l| l.strip_prefix(prefix)?.parse::<f64>().ok());
        if seconds_left.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds_left = seconds_left.expect("the expiry metric");
    let expected = (leaf.not_after - Utc::now()).num_seconds() as f64;
    assert!((seconds_left - expected).abs() < 30.0, "{seconds_left} vs {expected}");
    let _ = stop.send(());
    let _ = running.await;
}

/// The certificate a server serves, which the test can replace while the server runs and keeps
/// its TLS sessions, as a server that reloads its certificate does (Caddy's, nginx's reload with
/// `ssl_session_ticket_key`).
#[derive(Debug)]
struct Serving(Mutex<Arc<CertifiedKey>>);

impl Serving {
    fn key(leaf: &Leaf) -> Arc<CertifiedKey> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()));
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).expect("a signing key");
        Arc::new(CertifiedKey::new(vec![leaf.der.clone()], signing))
    }

    fn set(&self, leaf: &Leaf) {
        *self.0.lock() = Serving::key(leaf);
    }
}

impl ResolvesServerCert for Serving {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.lock().clone())
    }
}

/// An HTTPS server with one TLS config (and so one session store and ticket key) for its life,
/// serving `leaf` until told otherwise.
async fn serve_https_switchable(leaf: &Leaf) -> (u16, Arc<Serving>) {
    let serving = Arc::new(Serving(Mutex::new(Serving::key(leaf))));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(serving.clone());
    (serve_https_with(TlsAcceptor::from(Arc::new(config))).await, serving)
}

#[tokio::test]
async fn https_judges_the_certificate_served_now_not_a_resumed_session() {
    let ca = Ca::new("statusd test CA");
    let (port, serving) = serve_https_switchable(&ca.leaf(&["localhost"], 90 * DAY)).await;
    let asset =
        asset(json!({"assetType": "http", "address": format!("https://localhost:{port}/"), "caFile": ca.path()}));
    // One context for every probe, as a running statusd has: its clients outlive a probe.
    let context = ProbeContext::new().expect("probe clients");
    let first = asset.check(&context).await;
    assert!(first.success, "{:?}", first.message);

    // The server now serves a certificate of a CA nobody trusts, and would resume the session
    // the first probe got (rustls' server issues TLS 1.3 tickets and keeps them).
    let other = Ca::new("a CA statusd does not trust");
    let untrusted = other.leaf(&["localhost"], 90 * DAY);
    serving.set(&untrusted);
    let second = asset.check(&context).await;
    assert!(!second.success, "the certificate served now must be judged");
    let message = second.message.expect("a message");
    assert!(message.starts_with("TLS error: ") && message.contains("UnknownIssuer"), "{message}");

    // And a certificate renewed by the trusted CA is reported with its own expiry.
    let renewed = ca.leaf(&["localhost"], 60 * DAY);
    serving.set(&renewed);
    let third = asset.check(&context).await;
    assert!(third.success, "{:?}", third.message);
    assert_eq!(third.detail.certificate_expires_at, Some(renewed.not_after));
    let fourth = asset.check(&context).await;
    assert_eq!(fourth.detail.certificate_expires_at, Some(renewed.not_after), "{:?}", fourth.message);
}

/// A `caFile` rewritten while statusd runs (an internal CA rotated) is read again at the next
/// probe, by the `tls` probe and by HTTPS alike, in the context both probes keep.
#[tokio::test]
async fn a_rewritten_ca_file_is_read_again() {
    let (old, new) = (Ca::new("the old internal CA"), Ca::new("the new internal CA"));
    let leaf = new.leaf(&["localhost"], 90 * DAY);
    let tls_port = serve(&leaf).await.port;
    let https_port = serve_https(&leaf).await;
    let ca_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::copy(old.path(), ca_file.path()).expect("the old CA in place");
    let ca_path = ca_file.path().display().to_string();
    let assets = [
        asset(tls_asset(format!("localhost:{tls_port}"), json!({"caFile": ca_path}))),
        asset(json!({"assetType": "http", "address": format!("https://localhost:{https_port}/"), "caFile": ca_path})),
    ];
    let context = ProbeContext::new().expect("probe clients");
    for asset in &assets {
        let result = asset.check(&context).await;
        assert!(!result.success, "a certificate of a CA the file does not hold: {:?}", result.message);
    }

    std::fs::copy(new.path(), ca_file.path()).expect("the new CA in place");
    // A rewrite within the file system's timestamp granularity, of the same length, would look
    // unchanged; a rotation a moment later does not.
    let later = SystemTime::now() + Duration::from_secs(1);
    std::fs::File::options().write(true).open(ca_file.path()).and_then(|f| f.set_modified(later)).expect("mtime");
    for asset in &assets {
        let result = asset.check(&context).await;
        assert!(result.success, "{:?}", result.message);
        assert_eq!(result.detail.certificate_expires_at, Some(leaf.not_after));
    }
}

/// An HTTPS server speaking HTTP/2 (chosen by ALPN) whose answer carries a 64 KiB header.
async fn serve_h2_with_a_long_header(leaf: &Leaf) -> u16 {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()));
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], key)
            .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(|_request| async {
                    let mut response = hyper::Response::new("ok".to_string());
                    let long = hyper::header::HeaderValue::from_str(&"a".repeat(64 * 1024)).expect("a value");
                    response.headers_mut().insert("x-long", long);
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn https_over_http2_reads_a_long_header_as_browsers_do() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost"], 90 * DAY);
    let port = serve_h2_with_a_long_header(&leaf).await;
    let address = format!("https://localhost:{port}/");
    let result =
        probe_once(json!({"assetType": "http", "address": address, "caFile": ca.path(), "bodyContains": "ok"})).await;
    assert_eq!((result.success, result.code), (true, Some(200)), "{:?}", result.message);
}

/// CA parameters named `name`, valid from `from_days` to `to_days` from now (negative: past).
fn ca_params(name: &str, from_days: i64, to_days: i64) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    validity(&mut params, from_days, to_days);
    params
}

fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let at = |days: i64| epoch + Duration::from_secs(u64::try_from(unix_now() + days * DAY).expect("after 1970"));
    params.not_before = at(from_days);
    params.not_after = at(to_days);
}

fn expiry_of(der: &CertificateDer<'_>) -> DateTime<Utc> {
    statusd::not_after(der).expect("a certificate")
}

/// A leaf under an intermediate under a root that `caFile` trusts, served together with an
/// expired cross-signed copy of that root (same name and key, signed by an older root), as many
/// servers sent after old roots expired in 2020 and 2021.
struct CrossSigned {
    ca_file: tempfile::NamedTempFile,
    chain: Vec<CertificateDer<'static>>,
    leaf_key: Vec<u8>,
    intermediate: CertificateDer<'static>,
    root: CertificateDer<'static>,
}

fn cross_signed(root_days: i64, intermediate_days: i64, leaf_days: i64) -> CrossSigned {
    let root_key = KeyPair::generate().expect("root key");
    let root_params = ca_params("statusd test root", -30, root_days);
    let root = root_params.self_signed(&root_key).expect("root");
    let mut ca_file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut ca_file, root.pem().as_bytes()).expect("write CA");

    let intermediate_key = KeyPair::generate().expect("intermediate key");
    let intermediate_params = ca_params("statusd test intermediate", -30, intermediate_days);
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &Issuer::from_params(&root_params, &root_key))
        .expect("intermediate");

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut leaf_params, -30, leaf_days);
    let leaf =
        leaf_params.signed_by(&leaf_key, &Issuer::from_params(&intermediate_params, &intermediate_key)).expect("leaf");

    let old_key = KeyPair::generate().expect("old root key");
    let old_params = ca_params("statusd old root", -4000, -2000);
    let cross = ca_params("statusd test root", -3000, -2159)
        .signed_by(&root_key, &Issuer::from_params(&old_params, &old_key))
        .expect("cross-signed root");

    CrossSigned {
        ca_file,
        chain: vec![leaf.der().clone(), intermediate.der().clone(), cross.der().clone()],
        leaf_key: leaf_key.serialize_der(),
        intermediate: intermediate.der().clone(),
        root: root.der().clone(),
    }
}

#[tokio::test]
async fn expiry_is_taken_over_the_verified_path_not_an_extra_expired_certificate() {
    let pki = cross_signed(3650, 100, 200);
    let server = serve_with(chain_acceptor(pki.chain.clone(), &pki.leaf_key)).await;
    let address = format!("localhost:{}", server.port);
    let ca_file = pki.ca_file.path().display().to_string();
    let result = probe_once(tls_asset(address.clone(), json!({"caFile": ca_file}))).await;
    assert!(result.success, "{:?}", result.message);
    // The intermediate expires first on the path leaf → intermediate → root.
    assert_eq!(result.detail.certificate_expires_at, Some(expiry_of(&pki.intermediate)));

    // Without verification there is no verified path: everything served counts.
    let result = probe_once(tls_asset(address, json!({"insecureSkipVerify": true}))).await;
    assert_eq!(result.message.as_deref(), Some(r#"chain certificate "CN=statusd test root" expired 2159 days ago"#));
}

#[tokio::test]
async fn the_trusted_root_expiry_counts_on_the_verified_path() {
    let pki = cross_signed(50, 100, 200);
    let server = serve_with(chain_acceptor(pki.chain.clone(), &pki.leaf_key)).await;
    let ca_file = pki.ca_file.path().display().to_string();
    let result = probe_once(tls_asset(format!("localhost:{}", server.port), json!({"caFile": ca_file}))).await;
    assert!(result.success, "{:?}", result.message);
    assert_eq!(result.detail.certificate_expires_at, Some(expiry_of(&pki.root)));
}

/// The TLS probe says `close_notify` and waits for the server to close first, so nothing of
/// the connection is left on statusd's side once it returns (closing first, it would wait in
/// FIN_WAIT and then TIME_WAIT for 60 s, holding a local port): against a server that closes
/// after its handshake, one that waits for a request (and closes at `close_notify`), and one
/// that holds the connection without reading, which is reset once the grace has passed.
#[tokio::test]
async fn a_probe_leaves_no_socket_waiting_on_statusds_side() {
    let ca = Ca::new("statusd test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], 90 * DAY);
    let holding = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = acceptor(&leaf);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                if let Ok(tls) = acceptor.accept(stream).await {
                    held.push(tls);
                }
            }
        });
        port
    };
    for port in [serve(&leaf).await.port, serve_https(&leaf).await, holding] {
        let sockets = Sockets::of(port);
        for _ in 0..3 {
            let result = probe_once(tls_asset(format!("127.0.0.1:{port}"), json!({"caFile": ca.path()}))).await;
            assert!(result.success, "{:?}", result.message);
            assert_eq!(sockets.clients(), Vec::<String>::new(), "statusd's side");
        }
    }
}
