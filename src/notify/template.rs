//! Message templates (`template` on a channel read by people, `body` on the generic webhook):
//! Jinja templates (`minijinja`) compiled when the config is read, rendered per notification.
//!
//! A template sees the variables of [`context`]: `asset.id`, `asset.name`, `asset.address`
//! (masked as everywhere else), `asset.metadata`, `event`, `details`, `incident.id`,
//! `duration`, `tier` and `timestamp`. Syntax errors and unknown events are config problems at
//! load; a template that fails while rendering (a metadata key one asset lacks, a filter given
//! the wrong value) leaves the channel's built-in message in its place: the caller counts it,
//! and the notification still goes out.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Event, Notification, human_duration};
use crate::report::Report;

/// What a template may spend: far beyond any message (a loop over a storm of 50,000 assets
/// stays well within it), small enough that a template cannot hold a delivery for long.
const FUEL: u64 = 5_000_000;

/// What a template knows of the asset beyond the notification: from the manifest in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetFacts {
    /// As statusd shows it anywhere (password and secret query values masked, `***` with
    /// `hideAddress`): a template can never reveal more than the API does.
    pub address: String,
    pub metadata: BTreeMap<String, Value>,
}

/// A channel's `template`: event name → text, or for email `{"subject", "body"}`.
#[derive(Clone)]
pub struct Templates {
    /// As written, by event key (`"DOWN"`): compared on reload, listed in problems.
    sources: BTreeMap<String, Text>,
    /// Each text compiled under `<EVENT>` and `<EVENT>.subject`; None if a source did not compile
    /// (the config is then refused by [`Templates::validate`], so it never runs).
    env: Option<Arc<Environment<'static>>>,
    /// Compile errors, by key (`DOWN`, `DOWN.subject`), for [`Templates::validate`].
    errors: Vec<(String, String)>,
}

/// One event's template: the text, and (email only) a subject.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Body(String),
    Mail(MailText),
}

/// An email's template for one event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailText {
    #[serde(default)]
    subject: Option<String>,
    body: String,
}

impl Text {
    fn parts(&self) -> (Option<&str>, &str) {
        match self {
            Text::Body(body) => (None, body),
            Text::Mail(mail) => (mail.subject.as_deref(), &mail.body),
        }
    }
}

/// What a template made of one notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Email only: the subject, when the template has one.
    pub subject: Option<String>,
    pub body: String,
}

impl std::fmt::Debug for Templates {
    // The events only: a template is configuration, not a secret, but it may be long.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sources.keys()).finish()
    }
}

impl PartialEq for Templates {
    fn eq(&self, other: &Self) -> bool {
        self.sources == other.sources
    }
}

impl<'de> Deserialize<'de> for Templates {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sources = BTreeMap::<String, Text>::deserialize(deserializer)?;
        Ok(Templates::compile(sources))
    }
}

/// A fresh environment with statusd's rules: undefined values print as nothing, but a
/// missing key of a missing value is an error (so a typo fails the render, and the built-in
/// message goes out instead of a half-empty one); values are written as they are, or, for a
/// template named `*.json` (the webhook's `body`), as JSON.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|name| if name.ends_with(".json") { AutoEscape::Json } else { AutoEscape::None });
    // In text, a value that is not there (no incident, no tier) is nothing rather than `none`;
    // in JSON it stays `null`.
    env.set_formatter(|out, state, value| {
        if value.is_none() && state.auto_escape() == AutoEscape::None {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

impl Templates {
    fn compile(sources: BTreeMap<String, Text>) -> Templates {
        let mut env = environment();
        let mut errors = Vec::new();
        for (event, text) in &sources {
            let (subject, body) = text.parts();
            for (name, source) in [(format!("{event}.subject"), subject), (event.clone(), Some(body))] {
                let Some(source) = source else { continue };
                if let Err(e) = env.add_template_owned(name.clone(), source.to_string()) {
                    errors.push((name, describe(&e)));
                }
            }
        }
        let env = errors.is_empty().then(|| Arc::new(env));
        Templates { sources, env, errors }
    }

    /// Problems at `path` (`notifiers.<name>.template`): unknown events, syntax errors, and a
    /// `subject` where there is no subject (`subjects`: false but for email).
    pub fn validate(&self, path: &str, subjects: bool, report: &mut Report<'_>) {
        let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        for (event, text) in &self.sources {
            if !known.contains(&event.as_str()) {
                report.problem(format!("{path}.{event}"), format!("unknown event (one of: {})", known.join(", ")));
            }
            if !subjects && matches!(text, Text::Mail(_)) {
                report.problem(format!("{path}.{event}"), "must be a string (a subject and body are for email)");
            }
        }
        for (name, error) in &self.errors {
            report.problem(format!("{path}.{name}"), error);
        }
    }

    /// The text for `notification`, if this channel has a template for its event: Ok(None)
    /// when it has none, Err with why when rendering failed.
    pub fn render(
        &self,
        notification: &Notification,
        asset: Option<&AssetFacts>,
        escape: fn(&str) -> String,
    ) -> Result<Option<Rendered>, String> {
        let event = notification.event.as_str();
        let Some(text) = self.sources.get(event) else { return Ok(None) };
        let Some(env) = &self.env else { return Err("the template did not compile".into()) };
        let context = context(notification, asset, escape);
        let render = |name: &str| env.get_template(name).and_then(|t| t.render(&context)).map_err(|e| describe(&e));
        let subject = match text.parts().0 {
            Some(_) => Some(render(&format!("{event}.subject"))?.trim().to_string()),
            None => None,
        };
        Ok(Some(Rendered { subject, body: render(event)? }))
    }
}

/// The generic webhook's `body`: a template that renders the whole request body, as JSON.
#[derive(Clone)]
pub struct BodyTemplate {
    source: String,
    env: Result<Arc<Environment<'static>>, String>,
}

/// The name the body is compiled under: `.json` makes every `{{ value }}` JSON.
const BODY: &str = "body.json";

impl std::fmt::Debug for BodyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyTemplate")
    }
}

impl PartialEq for BodyTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for BodyTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        let mut env = environment();
        let env = env.add_template_owned(BODY, source.clone()).map(|()| Arc::new(env)).map_err(|e| describe(&e));
        Ok(BodyTemplate { source, env })
    }
}

impl BodyTemplate {
    /// Problems at `path` (`notifiers.<name>.body`): a syntax error, or a sample notification
    /// that does not render to JSON.
    pub fn validate(&self, path: &str, report: &mut Report<'_>) {
        let sample = sample();
        match self.render(&sample, Some(&AssetFacts::default())) {
            Ok(_) => {}
            Err(error) => {
                report.problem(path, format!("{error} (rendering a sample {} notification)", sample.event.as_str()))
            }
        }
    }

    /// The body for `notification`, as JSON; Err with why when it fails or is not JSON.
    pub fn render(&self, notification: &Notification, asset: Option<&AssetFacts>) -> Result<Value, String> {
        let env = self.env.as_ref().map_err(Clone::clone)?;
        let context = context(notification, asset, |text| text.to_string());
        let text = env.get_template(BODY).and_then(|t| t.render(&context)).map_err(|e| describe(&e))?;
        serde_json::from_str(&text).map_err(|e| format!("does not render to JSON: {e}"))
    }
}

/// A DOWN as the load-time check renders it: every variable set.
fn sample() -> Notification {
    let at = chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::days(20_000);
    Notification {
        event: Event::Down,
        asset_id: "sample".into(),
        asset_name: "Sample asset".into(),
        timestamp: at,
        details: "HTTP 500 (expected 200) \"quoted\"".into(),
        incident_id: Some(uuid::Uuid::nil()),
        group: Vec::new(),
        tier: Some(0),
        since: Some(at),
    }
}

/// The variables a template sees. Strings of the notification and the asset pass through
/// `escape` (the channel's markup escaping: a probe's message must not become a Slack link).
pub fn context(notification: &Notification, asset: Option<&AssetFacts>, escape: fn(&str) -> String) -> Value {
    let duration = notification.since.map(|since| human_duration(notification.timestamp - since)).unwrap_or_default();
    let metadata = asset.map(|a| escaped(&json!(a.metadata), escape)).unwrap_or_else(|| json!({}));
    json!({
        "asset": {
            "id": escape(&notification.asset_id),
            "name": escape(&notification.asset_name),
            "address": asset.map(|a| escape(&a.address)).unwrap_or_default(),
            "metadata": metadata,
        },
        "event": notification.event.as_str(),
        "details": escape(&notification.details),
        "incident": {"id": notification.incident_id},
        "duration": duration,
        "tier": notification.tier,
        "timestamp": notification.timestamp.to_rfc3339(),
    })
}

fn escaped(value: &Value, escape: fn(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(escape(text)),
        Value::Array(items) => Value::Array(items.iter().map(|v| escaped(v, escape)).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), escaped(v, escape))).collect()),
        other => other.clone(),
    }
}

/// minijinja's error in one line: what went wrong and where (`line 1`).
fn describe(error: &minijinja::Error) -> String {
    let mut text = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::sample as note;
    use super::*;

    fn templates(value: Value) -> Templates {
        serde_json::from_value(value).expect("a template object")
    }

    fn problems(templates: &Templates, subjects: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let mut report = Report::new("notifiers.json", &mut problems);
        templates.validate("notifiers.x.template", subjects, &mut report);
        problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
    }

    #[test]
    fn every_documented_variable_renders() {
        let t = templates(json!({"DOWN": "{{ event }} {{ asset.id }}/{{ asset.name }} at {{ asset.address }} \
            team={{ asset.metadata.team }} [{{ details }}] {{ incident.id }} {{ duration }} tier={{ tier }} {{ timestamp }}"}));
        assert!(problems(&t, false).is_empty());
        let mut n = note(Event::Down);
        n.tier = Some(1);
        n.since = Some(n.timestamp - chrono::TimeDelta::seconds(200));
        let asset = AssetFacts {
            address: "https://u:***@api.example.com/health".into(),
            metadata: BTreeMap::from([("team".to_string(), json!("payments"))]),
        };
        let rendered = t.render(&n, Some(&asset), |s| s.to_string()).expect("renders").expect("a DOWN template");
        assert_eq!(
            rendered.body,
            "DOWN api-prod/Production API at https://u:***@api.example.com/health team=payments \
             [HTTP 500 (expected 200)] 00000000-0000-0000-0000-000000000000 3m 20s tier=1 2026-11-21T10:30:00+00:00"
        );
        // Outside an incident, its id and tier are nothing (not `none`).
        let panic = Notification { event: Event::Down, incident_id: None, tier: None, ..note(Event::Down) };
        let blank = templates(json!({"DOWN": "[{{ incident.id }}][{{ tier }}][{{ duration }}]"}));
        assert_eq!(blank.render(&panic, None, |s| s.to_string()).expect("ok").expect("DOWN").body, "[][][]");
        // No template for the event: the built-in message.
        assert_eq!(t.render(&note(Event::Recovery), None, |s| s.to_string()), Ok(None));
    }

    #[test]
    fn syntax_errors_and_unknown_events_are_problems_with_their_key() {
        let t = templates(json!({"DOWN": "{{ asset.name ", "DWON": "x", "RECOVERY": {"subject": "s", "body": "b"}}));
        let found = problems(&t, false);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("notifiers.x.template.DWON: unknown event (one of: DOWN, RECOVERY"), "{found:?}");
        assert!(found[1].starts_with("notifiers.x.template.RECOVERY: must be a string"), "{found:?}");
        assert!(found[2].starts_with("notifiers.x.template.DOWN: syntax error"), "{found:?}");
        assert!(found[2].contains("line 1"), "{found:?}");
        let mail = templates(json!({"DOWN": {"subject": "{{ asset.name }} down", "body": "{{ details }}"}}));
        assert!(problems(&mail, true).is_empty());
        let rendered = mail.render(&note(Event::Down), None, |s| s.to_string()).expect("renders").expect("DOWN");
        assert_eq!(rendered.subject.as_deref(), Some("Production API down"));
    }

    #[test]
    fn a_failure_while_rendering_is_an_error_not_a_message() {
        let t = templates(json!({"DOWN": "owner: {{ asset.metadata.owner.name }}"}));
        assert!(problems(&t, false).is_empty(), "compiles: the failure is the asset's");
        let error = t.render(&note(Event::Down), None, |s| s.to_string()).expect_err("no owner");
        assert!(error.contains("undefined"), "{error}");
    }

    #[test]
    fn strings_pass_through_the_channel_escaping() {
        let t = templates(json!({"DOWN": "{{ details }}"}));
        let mut n = note(Event::Down);
        n.details = "<!channel>".into();
        let rendered = t.render(&n, None, |s| s.replace('<', "&lt;").replace('>', "&gt;")).expect("ok").expect("DOWN");
        assert_eq!(rendered.body, "&lt;!channel&gt;");
    }

    #[test]
    fn a_body_renders_json_with_every_value_written_as_json() {
        let body: BodyTemplate =
            serde_json::from_value(json!(r#"{"text": {{ asset.name ~ ": " ~ details }}, "tier": {{ tier }}}"#))
                .expect("body");
        let mut problems = Vec::new();
        body.validate("notifiers.x.body", &mut Report::new("notifiers.json", &mut problems));
        assert!(problems.is_empty(), "{problems:?}");
        let mut n = note(Event::Down);
        n.details = "say \"hi\"\n".into();
        assert_eq!(body.render(&n, None), Ok(json!({"text": "Production API: say \"hi\"\n", "tier": null})));

        let not_json: BodyTemplate = serde_json::from_value(json!("text={{ details }}")).expect("body");
        let mut problems = Vec::new();
        not_json.validate("notifiers.x.body", &mut Report::new("notifiers.json", &mut problems));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.starts_with("does not render to JSON"), "{}", problems[0].message);
    }
}
