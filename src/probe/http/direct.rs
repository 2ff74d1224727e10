//! The HTTP probe's own exchange for the common case: an `http://` address probed over a fresh
//! connection (`keepAlive` off), without a proxy. reqwest sends every other probe.
//!
//! Why by hand: reqwest's client (hyper-util's pooled client underneath) hands each new
//! connection to a task of its own and reaches it through a channel, and wraps each request in
//! its layers (redirects, retries, the pool, its own request and response types). A probe that
//! uses its connection once needs none of it: here the connection is driven in the probe's own
//! task, and nothing is spawned, pooled or woken across threads. The parts that are not ours
//! stay the crates reqwest is built on, set as reqwest sets them: hyper-util's `HttpConnector`
//! (resolution, happy eyeballs, `source_address`), hyper's HTTP/1.1 client connection with the
//! lenient head parsing of [`super::build`], and tower-http's `Decompression`, which asks for
//! and decodes gzip, deflate and br exactly as reqwest does (it is reqwest's own layer).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HOST, HeaderMap, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;
use tower_http::decompression::{Decompression, DecompressionBody};

use crate::http_error::MAX_RESPONSE_HEADERS;

/// A response's body as the exchange reads it: decoded when it came gzip-, deflate- or
/// br-encoded (its `Content-Encoding` then removed from the head, as reqwest does).
pub(super) type Body = DecompressionBody<Incoming>;

/// Where an `http://` address's probes go: parsed once per asset (see `ParsedUrl`).
pub(super) struct Target {
    /// `http://host[:port]/path?query`: the connector reads its host and port, the request
    /// line its path and query (origin form, RFC 9112, section 3.2.1). One `Uri` for both, as
    /// every HTTP asset keeps one.
    uri: Uri,
    /// The `Host` header (RFC 9110, section 7.2): the host, and the port unless it is 80.
    host: HeaderValue,
}

impl Target {
    /// The target of `url`, or None where reqwest must send the probe: not `http`, or with
    /// credentials (reqwest turns them into an `Authorization` header), or a URL whose text
    /// `http::Uri` refuses (reqwest then reports the error).
    pub(super) fn of(url: &url::Url) -> Option<Target> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let uri = Uri::try_from(&url[..url::Position::AfterQuery]).ok()?;
        uri.path_and_query()?;
        let host = HeaderValue::from_str(uri.authority()?.as_str()).ok()?;
        Some(Target { uri, host })
    }

    /// A request to this target, with `Host` added unless `headers` has one.
    pub(super) fn request(&self, method: hyper::Method, mut headers: HeaderMap, body: String) -> Request<String> {
        headers.entry(HOST).or_insert_with(|| self.host.clone());
        let mut request = Request::new(body);
        *request.method_mut() = method;
        // Checked in `of`: the URI has a path.
        if let Some(origin_form) = self.uri.path_and_query() {
            *request.uri_mut() = Uri::from(origin_form.clone());
        }
        *request.headers_mut() = headers;
        request
    }
}

/// Why an exchange ended without a response head.
pub(super) enum Failure {
    /// No connection: resolution, connect, or the socket's setup failed.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// Connected, but the request or the response head failed.
    Exchange(hyper::Error),
}

/// The connector and connection settings, built once and shared by every probe.
pub(super) struct Direct {
    connector: HttpConnector,
    connection: http1::Builder,
}

impl Direct {
    /// Probes sent from `source` (`[probes] source_address`), as reqwest's client sends them:
    /// `TCP_NODELAY`, no TCP keepalive, happy eyeballs after 300 ms, no connect timeout of its
    /// own (the probe's timeout bounds everything).
    pub(super) fn new(source: Option<IpAddr>) -> Direct {
        let mut connector = HttpConnector::new();
        connector.set_local_address(source);
        connector.set_nodelay(true);
        let mut connection = http1::Builder::new();
        connection
            .max_headers(MAX_RESPONSE_HEADERS)
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_spaces_after_header_name_in_responses(true)
            .ignore_invalid_headers_in_responses(true);
        Direct { connector, connection }
    }

    /// Connects to `target`, sends `request` and hands the response and, if `with_peer`, the
    /// peer's address (a system call) to `read`, which reads what it wants of the body; its
    /// answer is returned. The connection is reset when this returns (`SO_LINGER` 0, as
    /// reqwest's `tcp_reset_on_close` does), so neither side keeps a socket in TIME_WAIT;
    /// whatever of the body `read` left unread is discarded with it.
    pub(super) async fn exchange<T>(
        &self,
        target: &Target,
        request: Request<String>,
        with_peer: bool,
        read: impl AsyncFnOnce(Response<Body>, Option<IpAddr>) -> T,
    ) -> Result<T, Failure> {
        let tcp = self.connector.clone().oneshot(target.uri.clone()).await.map_err(|e| Failure::Connect(e.into()))?;
        tcp.inner().set_zero_linger().map_err(|e| Failure::Connect(e.into()))?;
        let peer = if with_peer { tcp.inner().peer_addr().ok().map(|address| address.ip()) } else { None };
        let (mut sender, connection) = self.connection.handshake(ResetOnClose(tcp)).await.map_err(Failure::Exchange)?;
        // The service owns the sender and drops it once the request is queued: the connection
        // then ends with the response.
        let decoded = Decompression::new(tower::service_fn(move |request| sender.send_request(request)))
            .gzip(true)
            .deflate(true)
            .br(true)
            .no_zstd();
        let exchange = async move {
            let response = decoded.oneshot(request).await;
            match response {
                Ok(response) => Ok(read(response, peer).await),
                Err(e) => Err(Failure::Exchange(e)),
            }
        };
        // Boxed: the exchange and the connection are most of a probe's state, and a future
        // nested in async fns is copied whole each time the one above it first polls it (here
        // through `check_directly`, `HttpSpec::check` and `ProbeSpec::check`). Inline, they made
        // each of those futures several KB, and memcpy was 5 % of statusd's CPU at 1,000 × 1 s
        // (perf; these copies most of what it could attribute); boxed, they are copied into the
        // allocation once, the futures above are small, and a probe takes 11.6 % fewer
        // instructions outside the API (callgrind, README "Benchmarks"). `HttpSpec`'s tests keep
        // its future small.
        Box::pin(Drive { exchange, connection, connection_done: false }).await
    }
}

pin_project_lite::pin_project! {
    /// Polls `exchange` to its end and `connection` beside it, in this task, which is what the
    /// connection's own task does in hyper's examples (and in reqwest). `exchange` goes first, so
    /// that its request is queued before the connection is first polled, as in reqwest, where it
    /// is queued before the connection's task first runs. The connection's result needs no look:
    /// hyper gives its errors to the request or the body in flight, which `exchange` reads (a
    /// server that closes as it accepts included: `tests/e2e/http_probe.rs`); one after the
    /// response is whole changes nothing.
    struct Drive<E, C> {
        #[pin]
        exchange: E,
        #[pin]
        connection: C,
        connection_done: bool,
    }
}

impl<E: Future, C: Future<Output = hyper::Result<()>>> Future for Drive<E, C> {
    type Output = E::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<E::Output> {
        let this = self.project();
        let answer = this.exchange.poll(cx);
        // Whatever the connection gives the exchange (the head, a chunk, an error) wakes this
        // task again.
        if answer.is_pending() && !*this.connection_done && this.connection.poll(cx).is_ready() {
            *this.connection_done = true;
        }
        answer
    }
}

/// A connection whose shutdown sends no FIN, so that its close, with `SO_LINGER` 0, is a reset:
/// after a `Connection: close` answer hyper shuts the connection down, and the FIN would put
/// the server's socket in TIME_WAIT (as vendored reqwest's `tcp_reset_on_close` does it; see
/// `vendor/README.md` for what it saves).
struct ResetOnClose(TokioIo<TcpStream>);

impl hyper::rt::Read for ResetOnClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ResetOnClose {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
