//! HTTP(S) probe: GET the address; healthy when the status is one of `expectedStatusCodes`
//! (or below 400 when none are given).

use serde::{Deserialize, Serialize};

use super::{ProbeContext, ProbeOutcome, describe_reqwest_error};
use crate::config::Report;

/// Enough body to finish a normal health response; a runaway body is cut here.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    #[serde(default)]
    pub expected_status_codes: Vec<u16>,
}

/// One client for every HTTP asset. No idle pool: each probe opens a fresh connection, so a
/// server that stops accepting connections is noticed instead of hidden by a kept-alive one.
pub(super) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("statusd/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .build()
}

impl HttpSpec {
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
        for (i, code) in self.expected_status_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                report.problem(
                    format!("{path}.expectedStatusCodes[{i}]"),
                    format!("{code} is not an HTTP status code (100-599)"),
                );
            }
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

    pub(super) async fn check(&self, address: &str, context: &ProbeContext) -> ProbeOutcome {
        // No client timeout here: `probe::run` bounds the whole probe (body included), so a
        // timeout always reads the same, whichever layer would have noticed it first.
        let mut response = match context.http.get(address).send().await {
            Ok(response) => response,
            Err(e) => return ProbeOutcome::down(None, describe_reqwest_error(&e.without_url())),
        };
        let status = response.status().as_u16();
        let code = Some(i32::from(status));
        // Read (a bounded part of) the body: a server that sends headers and then dies is down.
        let mut read = 0usize;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let reason = describe_reqwest_error(&e.without_url());
                    return ProbeOutcome::down(code, format!("HTTP {status}, then reading the body failed: {reason}"));
                }
            }
        }
        if self.accepts(status) {
            ProbeOutcome::up(code)
        } else {
            ProbeOutcome::down(code, format!("HTTP {status} (expected {})", self.expectation()))
        }
    }
}
