//! Email over SMTP (`lettre`): one message per notification, `multipart/alternative` with a
//! plain-text and an HTML part (RFC 2046 section 5.1.4), the headline as its subject.
//! `security`: `"starttls"` (the default: plain connection upgraded with STARTTLS, which must
//! be offered, RFC 3207; port 587 by default), `"tls"` (TLS from the first byte, RFC 8314; port
//! 465) or `"none"` (no encryption: a relay on the same host or a test server; port 25).
//! With `username`, authenticates with `password` (PLAIN or LOGIN, as the server offers).
//! `baseUrl`, an SMTP URL as lettre reads it (`smtp://host:port` without encryption,
//! `smtp://host:port?tls=required` for STARTTLS, `smtps://host:port` for TLS), takes the place
//! of `host`, `port` and `security`.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::template::{Rendered, Templates};
use super::{Attempt, DeliveryError, Key, Notification, escape_html};
use crate::redact::Secret;
use crate::report::{Bound, Report};

/// `{"type": "email", "host": "smtp.example.com", "username": "statusd", "password": "…",
/// "from": "statusd <statusd@example.com>", "to": ["ops@example.com"]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Email {
    /// Required unless `baseUrl` says where.
    #[serde(default)]
    pub host: String,
    /// An SMTP URL in place of `host`, `port` and `security`; may carry credentials, never shown.
    #[serde(default)]
    pub base_url: Option<Secret>,
    /// Unset: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// A mailbox: `ops@example.com` or `statusd <statusd@example.com>`.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "super::default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "super::default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub group: Option<bool>,
    /// Per event: the body (plain text; the HTML part is the same text), or `{"subject", "body"}`.
    #[serde(default)]
    pub template: Option<Templates>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    #[default]
    Starttls,
    Tls,
    None,
}

pub const KEYS: &[Key] = &[
    Key::optional("host"),
    Key::optional("port"),
    Key::optional("security"),
    Key::optional("username"),
    Key::optional_secret("password"),
    Key::required("from"),
    Key::required("to"),
];

pub const BOUNDS: &[Bound] = &[Bound::new("port", 1, 65535)];

/// A message ready to send, and where to.
#[derive(Debug, Clone)]
pub struct Mail {
    email: Email,
    message: Result<lettre::Message, String>,
}

impl Email {
    /// The mail for `notification`: subject the headline, body as plain text and as HTML; or
    /// the template's subject (else the headline) and body (both parts the same text).
    pub fn mail(&self, notification: &Notification, rendered: Option<&Rendered>) -> Mail {
        let subject = rendered.and_then(|r| r.subject.clone()).unwrap_or_else(|| notification.headline());
        let (plain, html) = match rendered {
            Some(rendered) => (
                rendered.body.clone(),
                format!(
                    "<!doctype html><html><body><p>{}</p></body></html>",
                    escape_html(&rendered.body).replace('\n', "<br>\n")
                ),
            ),
            None => self.built_in(notification),
        };
        let message = self.mailboxes().and_then(|(from, to)| {
            let mut builder = lettre::Message::builder().from(from).subject(subject);
            for mailbox in to {
                builder = builder.to(mailbox);
            }
            builder.multipart(MultiPart::alternative_plain_html(plain, html)).map_err(|e| e.to_string())
        });
        Mail { email: self.clone(), message }
    }

    /// The built-in text and HTML bodies.
    fn built_in(&self, notification: &Notification) -> (String, String) {
        let plain = format!("{}\n\n{}\n\n-- \nstatusd", notification.headline(), notification.plain_text());
        let html = format!(
            "<!doctype html><html><body><h2 style=\"color:#{:06X}\">{}</h2><p>{}</p><p style=\"color:#667085\">statusd</p></body></html>",
            notification.event.colour(),
            escape_html(&notification.headline()),
            escape_html(&notification.plain_text()).replace('\n', "<br>\n"),
        );
        (plain, html)
    }

    fn mailboxes(&self) -> Result<(Mailbox, Vec<Mailbox>), String> {
        let from = self.from.parse::<Mailbox>().map_err(|e| format!("from: {e}"))?;
        let to = self
            .to
            .iter()
            .map(|to| to.parse::<Mailbox>().map_err(|e| format!("to {to:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok((from, to))
    }

    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        if let Some(url) = &self.base_url {
            // lettre's own errors about a URL never quote it (it may hold a password).
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                .map_err(|e| e.to_string())?
                .timeout(Some(timeout));
            if let Some(username) = &self.username {
                let password = self.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
                builder = builder.credentials(Credentials::new(username.clone(), password));
            }
            return Ok(builder.build());
        }
        let builder = match self.security {
            Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host),
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host),
            Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)),
        }
        .map_err(|e| e.to_string())?;
        let port = self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        });
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let Some(username) = &self.username {
            let password = self.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(builder.build())
    }

    pub fn validate(&self, path: &str, report: &mut Report<'_>) {
        match &self.base_url {
            None if self.host.trim().is_empty() => {
                report.problem(format!("{path}.host"), "must not be empty (or set baseUrl)")
            }
            None => {}
            Some(url) => {
                let shown = crate::redact::url(url.expose());
                let scheme = url.expose().split_once("://").map(|(scheme, _)| scheme);
                if !matches!(scheme, Some("smtp" | "smtps")) {
                    report.problem(format!("{path}.baseUrl"), format!("{shown:?} is not an smtp:// or smtps:// URL"));
                } else if let Err(e) = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()) {
                    report.problem(format!("{path}.baseUrl"), format!("{shown:?}: {e}"));
                }
            }
        }
        if let Some(template) = &self.template {
            template.validate(&format!("{path}.template"), true, report);
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            report.problem(format!("{path}.from"), format!("{:?} is not an address ({e})", self.from));
        }
        if self.to.is_empty() {
            report.problem(format!("{path}.to"), "must list at least one address");
        }
        for (index, to) in self.to.iter().enumerate() {
            if let Err(e) = to.parse::<Mailbox>() {
                report.problem(format!("{path}.to[{index}]"), format!("{to:?} is not an address ({e})"));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            report.problem(format!("{path}.password"), "is set without a username");
        }
    }
}

impl Mail {
    /// One try. A permanent SMTP refusal (5xx: unknown recipient, refused credentials) is not
    /// retried; connection problems and 4xx are.
    pub(super) async fn send(&self, timeout: Duration) -> Attempt {
        let message = match &self.message {
            Ok(message) => message,
            Err(e) => return Attempt::Stop(DeliveryError::Refused { reason: format!("not a valid message: {e}") }),
        };
        let transport = match self.email.transport(timeout) {
            Ok(transport) => transport,
            Err(e) => return Attempt::Stop(DeliveryError::Refused { reason: e }),
        };
        match tokio::time::timeout(timeout * 4, transport.send(message.clone())).await {
            Ok(Ok(_)) => Attempt::Sent(None),
            Ok(Err(e)) if e.is_permanent() => Attempt::Stop(DeliveryError::Refused { reason: smtp_error(&e) }),
            Ok(Err(e)) => Attempt::Retry(smtp_error(&e)),
            Err(_) => Attempt::Retry("timeout".into()),
        }
    }
}

/// lettre's error and its causes, in one line (they name the server's reply, never the password).
fn smtp_error(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        // lettre's own Display often ends with its cause already.
        if !text.contains(&inner_text) {
            text.push_str(&format!(": {inner_text}"));
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn a_mail_has_the_headline_as_subject_and_both_parts() {
        let email = Email {
            host: "smtp.example.com".into(),
            base_url: None,
            port: None,
            security: Security::default(),
            username: None,
            password: None,
            from: "statusd <statusd@example.com>".into(),
            to: vec!["ops@example.com".into(), "dev@example.com".into()],
            timeout_seconds: 10,
            max_attempts: 3,
            group: None,
            template: None,
        };
        let mut notification = sample(Event::Down);
        notification.details = "<script> & co".into();
        let message = email.mail(&notification, None).message.expect("a message");
        let text = String::from_utf8(message.formatted()).expect("utf-8");
        assert!(text.contains("To: ops@example.com, dev@example.com"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain") && text.contains("text/html"), "{text}");
        assert!(text.contains("&lt;script&gt; &amp; co"), "escaped in the HTML part: {text}");
    }
}
