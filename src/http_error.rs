//! What went wrong with an HTTP request, in an operator's words, for the HTTP probe, the
//! notification channels and the self-check alike; and the limits on what statusd reads of a
//! response head, which the wording names. A leaf module: it knows reqwest, nothing of statusd.

/// Header lines a response may have. hyper's default (100) refuses responses that curl and
/// browsers read (150 `Set-Cookie`s, a CDN's debug headers); no browser counts them at all, and a
/// parse reserves room for this many.
pub const MAX_RESPONSE_HEADERS: usize = 1000;
/// The size a response head may have: hyper's HTTP/1 read buffer (8 KiB + 400 KiB), which
/// reqwest does not let us change; larger than Chrome's 256 KiB and near curl's 300 KiB. HTTP/2
/// is given the same (its own default is 16 KiB).
pub const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024 + 400 * 1024;

/// Names what went wrong in words an operator knows: timeout, connection refused, DNS error,
/// TLS error; otherwise the innermost cause. Callers strip URLs first (they may hold tokens).
pub fn describe_reqwest_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timeout".into();
    }
    describe_http_error(error)
}

/// [`describe_reqwest_error`] for an error of hyper or hyper-util met without reqwest (the HTTP
/// probe's own exchange): the same words for the same cause, as both walk the same chain of
/// sources below reqwest's and hyper-util's wrappers.
pub fn describe_http_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = Some(error);
    let mut innermost = error.to_string();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset by peer".into(),
                std::io::ErrorKind::TimedOut => return "timeout".into(),
                _ => {}
            }
            // io::Error::source skips the error it wraps (which may be another io::Error),
            // so dig for rustls by hand.
            let mut wrapped = io.get_ref();
            while let Some(inner) = wrapped {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return format!("TLS error: {tls}");
                }
                wrapped = inner.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
            }
        }
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return format!("TLS error: {tls}");
        }
        if let Some(http) = current.downcast_ref::<hyper::Error>() {
            if http.is_parse_too_large() {
                return format!(
                    "the response head is larger than statusd reads (at most {} header lines and {} KiB)",
                    MAX_RESPONSE_HEADERS,
                    MAX_RESPONSE_HEAD_BYTES / 1024
                );
            }
            if http.is_parse_status() {
                return "invalid HTTP status line: statusd reads a 3-digit code between single spaces \
                        (HTTP/1.1 200 OK)"
                    .into();
            }
        }
        let text = current.to_string();
        if text == "dns error" {
            // The resolver's own words are the innermost cause: reqwest puts a wrapper of its
            // own between ("error resolving DNS"), hyper-util alone does not.
            let mut reason = current.source();
            while let Some(deeper) = reason.and_then(|r| r.source()) {
                reason = Some(deeper);
            }
            return format!("DNS error: {}", reason.map(|r| r.to_string()).unwrap_or_default());
        }
        innermost = text;
        cause = current.source();
    }
    innermost
}
