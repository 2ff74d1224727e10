//! How the HTTP probe ends its connections (its other behaviour is tested end to end, in
//! `tests/e2e/http_probe.rs`).

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use statusd::ProbeContext;
use tokio::net::TcpListener;

use super::common::{Sockets, asset};

/// A probe that does not keep its connection asks the server to close it (`Connection: close`,
/// RFC 9112 section 9.6) and resets it once the response is read, so nothing of it waits in
/// TIME_WAIT on either side: closing first, statusd would hold a local port for 60 s per probe,
/// which caps probes of one address:port at about 470 a second off loopback; with a FIN after
/// the server's, the server's socket would wait instead. A kept connection sends no such
/// header, and an asset's own `Connection` header is sent instead of statusd's.
#[tokio::test]
async fn a_probe_without_keep_alive_asks_the_server_to_close_and_keeps_no_port_waiting() {
    use axum::routing::get;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/",
        get(move |headers: axum::http::HeaderMap| async move {
            let connection = headers.get("connection").and_then(|v| v.to_str().ok()).unwrap_or("-");
            recorder.lock().push(connection.to_string());
            "ok"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let port: u16 = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let sockets = Sockets::of(port);
    let context = ProbeContext::new().expect("clients");
    let asset = |extra: Value| {
        let mut fields = json!({"assetType": "http", "address": format!("{base}/"), "timeoutSeconds": 2});
        for (key, value) in extra.as_object().into_iter().flatten() {
            fields[key] = value.clone();
        }
        asset(fields)
    };

    let fresh = asset(json!({}));
    const PROBES: usize = 20;
    for _ in 0..PROBES {
        let result = fresh.check(&context).await;
        assert!(result.success, "{result:?}");
    }
    assert_eq!(*seen.lock(), vec!["close"; PROBES]);
    // A connection's end runs on its own task just after the response; give it the moment.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while sockets.clients().iter().any(|state| state != "06") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Without the reset each of the 20 waits on the server's side.
    assert_eq!(sockets.time_wait_sides(), (0, 0), "TIME_WAIT: (the server's side, statusd's)");

    seen.lock().clear();
    assert!(asset(json!({"keepAlive": true})).check(&context).await.success);
    assert!(asset(json!({"headers": {"Connection": "keep-alive"}})).check(&context).await.success);
    assert_eq!(*seen.lock(), vec!["-", "keep-alive"], "a kept connection, then the asset's own header");
}

/// nginx as a child process serving HTTPS with HTTP/2 on a free loopback port, stopped (and
/// its directory removed) when dropped.
struct Nginx {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// `None` when there is no nginx on this machine (Debian's package; `scripts/check-deploy`
    /// installs it for CI).
    fn start() -> Option<Nginx> {
        let binary = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .chain([std::path::PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())?;
        let dir = tempfile::tempdir().expect("temp dir");
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("cert.pem");
        std::fs::write(dir.path().join("key.pem"), certified.signing_key.serialize_pem()).expect("key.pem");
        // A port the kernel just handed out and that nobody holds now; nginx binds it next.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let config = format!(
            "daemon off; master_process off; pid nginx.pid; error_log error.log info;
             events {{ worker_connections 64; }}
             http {{
               log_format protocol $server_protocol; access_log access.log protocol;
               client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi;
               uwsgi_temp_path uwsgi; scgi_temp_path scgi;
               server {{
                 listen 127.0.0.1:{port} ssl http2;
                 ssl_certificate cert.pem; ssl_certificate_key key.pem;
                 location / {{ return 200 ok; }}
               }}
             }}"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).expect("nginx.conf");
        let child = std::process::Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .args(["-c", "nginx.conf", "-e", "error.log"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, port, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            assert!(std::time::Instant::now() < deadline, "nginx did not listen on {port} within 10 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(nginx)
    }

    /// The protocol of each request served so far, as nginx logs it (`HTTP/2.0`).
    fn protocols(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines().map(str::to_string).collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HTTP/2 has no `Connection: close` (RFC 9113, section 8.2.2), so over HTTPS with `h2` a
/// probe that does not keep its connection closes it itself, after its GOAWAY: by a reset, so
/// that nothing is left on statusd's side. Closing with a FIN, statusd's socket waited in
/// TIME_WAIT for 60 s after each probe to nginx (which closes at the GOAWAY), and off
/// loopback that caps probes of one address:port at about 470 a second. Against nginx, the
/// server such probes meet most (SKIPPED where it is not installed).
#[tokio::test]
async fn an_https_probe_over_http2_leaves_no_socket_waiting_on_statusds_side() {
    let Some(nginx) = Nginx::start() else {
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
        return;
    };
    // The connection that found nginx listening closed first: it waits, and is not statusd's.
    let sockets = Sockets::of(nginx.port);
    let context = ProbeContext::new().expect("clients");
    let https = asset(json!({"assetType": "http", "address": format!("https://localhost:{}/", nginx.port),
        "insecureSkipVerify": true, "timeoutSeconds": 5}));
    const PROBES: usize = 10;
    for _ in 0..PROBES {
        let result = https.check(&context).await;
        assert!(result.success, "{result:?}");
    }
    // A connection's end runs on its own task just after the response; give it the moment.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !sockets.clients().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(nginx.protocols(), vec!["HTTP/2.0"; PROBES]);
    assert_eq!(sockets.clients(), Vec::<String>::new(), "statusd's side");
}
