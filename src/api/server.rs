//! The HTTP server: hyper with timeouts axum's `serve` does not expose, a graceful drain, and a
//! lingering close announced to the client.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, Response, Version, header};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// A client that has not sent its request headers by then is dropped (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` resolves, then stops accepting and gives requests in flight up to
/// `drain` to finish. At most `max_connections` connections are open at once: past that, new
/// clients wait in the listen backlog until one closes, so a flood of clients (or of idle
/// keep-alive connections) cannot exhaust file descriptors or memory.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()>,
    drain: Duration,
    max_connections: usize,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            // Invariant: the semaphore is never closed.
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the connection semaphore stays open"),
            () = &mut stop => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let router = router.clone();
                    let service = hyper::service::service_fn(move |request| answer(router.clone(), request));
                    let stream = Lingering(Some(stream));
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        drop(slot);
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("some API requests were still running when the drain period ended");
    }
}

/// The router's answer to `request`, with `Connection: close` when the request's body was not
/// read to its end (a 413 for a body over the limit, a 401 or 404 before the body was looked
/// at). hyper then closes the connection after the answer rather than read the rest, and
/// without that header the client would not know: it has sent its whole request and read a
/// whole answer, so it puts the connection back in its pool, sends its next request on it and
/// reads the close instead of an answer ("connection closed before message completed", seen in
/// the API's e2e tests on the request after a 413). `Connection` is HTTP/1 only.
async fn answer(router: Router, request: Request<Incoming>) -> Result<Response<axum::body::Body>, Infallible> {
    let read = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let http1 = request.version() < Version::HTTP_2;
    let request = request.map(|body| Watched { body, read: Arc::clone(&read) });
    let mut response = router.oneshot(request).await?;
    if http1 && !read.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// A request body that records, in `read`, when it has been read to its end.
struct Watched {
    body: Incoming,
    read: Arc<AtomicBool>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        // A reader may stop after the last frame without asking for the end it knows is there.
        if matches!(frame, Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How long, and how much, a closed connection's unread request bytes are read and discarded.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 1024 * 1024;

/// A connection that closes the way nginx's `lingering_close` does. When hyper answers before
/// reading a whole request body (a 413 for a body over the limit) and closes, the client may
/// still be sending; closing a socket with unread bytes makes the kernel send a reset, which can
/// reach the client before it has read the answer, so it sees "connection closed before message
/// completed" instead of the JSON error (seen under load in the API's e2e tests). Dropped, this
/// reads and discards what is left, for a moment, before the socket closes.
struct Lingering(Option<TcpStream>);

impl Lingering {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        // Invariant: the stream is taken only in `drop`.
        Pin::new(self.0.as_mut().expect("a connection still in use has its stream"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut stream) = self.0.take() else { return };
        // Outside a runtime (the process is ending) there is no one left to answer.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let mut rest = (&mut stream).take(LINGER_BYTES);
            let _ = tokio::time::timeout(LINGER_TIME, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|stream| stream.is_write_vectored())
    }
}
