//! Secrets in addresses: what an address may show outside the process.
//!
//! An address is what a probe (or the store) connects to, and people put credentials in it:
//! `http://user:PASSWORD@host/health?apikey=KEY`, `postgres://user:PASSWORD@db/statusd`. The
//! process uses it as written; everything that leaves it (API answers, the `assets` table, logs,
//! notifications, probe messages) shows [`url`] of it instead, or `***` for an asset with
//! `hideAddress`.

use url::Url;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Query parameters whose name contains one of these (case-insensitive) carry a secret:
/// `apikey`, `access_token`, `X-Auth`, `signature`, `client_secret`, `password`.
const SECRET_PARAM_WORDS: &[&str] = &["key", "token", "secret", "password", "sig", "auth"];

/// Secrets shorter than this are not scrubbed from free text: replacing every "0" of a message
/// would destroy it, and a secret that short is guessed anyway.
const MIN_SCRUBBED_CHARS: usize = 4;

/// Whether a query parameter of this name holds a secret.
pub fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|word| name.contains(word))
}

/// The address with the password of its userinfo (`user:***@`) and the values of its secret
/// query parameters (`apikey=***`) masked, fit for logs, API answers and the database. An
/// address with nothing to mask is returned as written (not normalised by the URL parser);
/// one with an `@` that does not parse as a URL with a host keeps only what follows its last `@`.
pub fn url(raw: &str) -> String {
    if !raw.contains(['@', '?']) {
        return raw.to_string();
    }
    let mut url = match Url::parse(raw) {
        // `user:pass@host` parses as the scheme `user` and an opaque path: not a URL's userinfo.
        Ok(url) if url.cannot_be_a_base() && raw.contains('@') => return unparsed(raw),
        Ok(url) => url,
        Err(_) => return unparsed(raw),
    };
    let mut changed = false;
    if url.password().is_some() {
        // Only a URL that cannot have a password (no host) refuses it, and it has none.
        changed |= url.set_password(Some(MASK)).is_ok();
    }
    if url.query_pairs().any(|(name, _)| is_secret_param(&name)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_param(&name) { MASK.to_string() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed { url.to_string() } else { raw.to_string() }
}

/// An address the URL parser refuses (`postgres://u:p#s@db/x`: the `#` starts a fragment): keep
/// nothing of what comes before its last `@`, which may be credentials.
fn unparsed(raw: &str) -> String {
    match raw.rsplit_once('@') {
        None => raw.to_string(),
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://{MASK}@{after}"),
            None => format!("{MASK}@{after}"),
        },
    }
}

/// The secret parts of an address, as written and percent-decoded: the userinfo password and the
/// values of secret query parameters; with `whole`, also the address itself, its path and query,
/// and its host when it has a dot or is an IP address. For [`scrub`].
pub fn secrets(raw: &str, whole: bool) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let url = Url::parse(raw).ok().filter(|url| !url.cannot_be_a_base());
    match &url {
        Some(url) => {
            if let Some(password) = url.password() {
                found.push(password.to_string());
                found.push(percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned());
            }
        }
        // Not a URL with a host (a typo in one, `host:port`, a bare host): what stands between
        // `user:` and the last `@` is taken for a password all the same.
        None => {
            if let Some((before, _)) = raw.rsplit_once('@') {
                let userinfo = before.split_once("://").map_or(before, |(_, userinfo)| userinfo);
                if let Some((_, password)) = userinfo.split_once(':') {
                    found.push(password.to_string());
                }
            }
        }
    }
    // The query as written and as the parser encodes it, each parameter as written and decoded.
    let written = raw.split_once('?').map(|(_, query)| query.split('#').next().unwrap_or(query));
    for query in [written, url.as_ref().and_then(Url::query)].into_iter().flatten() {
        for param in query.split('&') {
            let Some((name, value)) = url::form_urlencoded::parse(param.as_bytes()).next() else { continue };
            if is_secret_param(&name) {
                found.push(param.split_once('=').map_or("", |(_, written)| written).to_string());
                found.push(value.into_owned());
            }
        }
    }
    if whole {
        found.push(raw.to_string());
        let host = match &url {
            Some(url) => {
                let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
                if path != "/" {
                    found.push(path.to_string());
                }
                url.host_str().unwrap_or_default().to_string()
            }
            None => match raw.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => host.to_string(),
                _ => raw.to_string(),
            },
        };
        // Only a name with a dot or an address: a bare word ("host", "db") is also ordinary text.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.contains(['.', ':']) {
            found.push(host.to_string());
        }
    }
    found.retain(|secret| secret.chars().count() >= MIN_SCRUBBED_CHARS);
    // Longest first, so that a secret containing another is replaced whole.
    found.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    found.dedup();
    found
}

/// `text` with every one of `secrets` replaced by `***`: a probe message may quote a peer that
/// echoes the request (an error page showing the URL it was asked for).
pub fn scrub(text: String, secrets: &[String]) -> String {
    let mut text = text;
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

/// A value that must never reach a log line or an API answer (webhook URLs carry their token).
#[derive(Clone, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "***")]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Shown as `***` wherever the config is serialized (the API answers with assets' settings).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_parameters_are_masked() {
        assert_eq!(url("http://user:PASSWORD@host/health?apikey=KEY"), "http://user:***@host/health?apikey=***");
        assert_eq!(
            url("https://h/x?access_token=a&page=2&X-Auth=b&Signature=c&q=a+b"),
            "https://h/x?access_token=***&page=2&X-Auth=***&Signature=***&q=a+b"
        );
        // Nothing to mask: as written, not normalised (no trailing slash added).
        assert_eq!(url("https://www.example.com"), "https://www.example.com");
        assert_eq!(url("https://h/x?page=2&q=%20"), "https://h/x?page=2&q=%20");
        assert_eq!(url("https://user@h/"), "https://user@h/");
        assert_eq!(url("example.com:443"), "example.com:443");
        assert_eq!(url("[::1]:443"), "[::1]:443");
    }

    #[test]
    fn database_urls_keep_working() {
        assert_eq!(url("postgres://status:s3cret@db:5432/status_db"), "postgres://status:***@db:5432/status_db");
        assert_eq!(url("sqlite://statusd.db"), "sqlite://statusd.db");
        assert_eq!(url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(url("postgres://db/x?sslmode=disable&password=a"), "postgres://db/x?sslmode=disable&password=***");
        assert_eq!(url("postgres://u:p@h/db?password=x"), "postgres://u:***@h/db?password=***");
        // Unparseable: nothing before the last @ survives.
        assert_eq!(url("postgres://u:p#ss@db/x"), "postgres://***@db/x");
        assert_eq!(url("u:pass@host"), "***@host");
    }

    #[test]
    fn secrets_are_scrubbed_from_text_as_written_and_decoded() {
        let secrets = secrets("http://user:pa%20ss@host/h?apikey=K%2Bey123&page=22", false);
        assert_eq!(
            scrub("GET /h?apikey=K%2Bey123 user pa ss, key K+ey123, page 22".into(), &secrets),
            "GET /h?apikey=*** user ***, key ***, page 22"
        );
        // A URL that does not parse (the port is out of range) still has its password found.
        let secrets = super::secrets("http://user:s3cret@host:99999/", false);
        assert_eq!(
            scrub("\"http://user:s3cret@host:99999/\" is not a valid URL".into(), &secrets),
            "\"http://user:***@host:99999/\" is not a valid URL"
        );
        // Too short to tell apart from ordinary text.
        assert!(super::secrets("http://u:abc@h/", false).is_empty());
        let hidden = super::secrets("https://hc-ping.example/0f3c9a2e", true);
        assert_eq!(scrub("GET https://hc-ping.example/0f3c9a2e failed".into(), &hidden), "GET *** failed");
        assert_eq!(scrub("path /0f3c9a2e on hc-ping.example".into(), &hidden), "path *** on ***");
        let hidden = super::secrets("db.internal:5432", true);
        assert_eq!(
            scrub("db.internal:5432 is not db.internal, port 5432".into(), &hidden),
            "*** is not ***, port 5432"
        );
    }
    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret = Secret::new("https://hooks.example.com/T0/B0/token");
        assert_eq!(format!("{secret:?}"), "\"***\"");
    }
}
