//! Slack incoming webhook: `text` for notifications and old clients, `blocks` for the message.

use serde_json::json;

use super::{Notification, truncate};

/// Slack's limit on a section's text.
const MAX_SECTION_TEXT: usize = 3000;

pub fn payload(notification: &Notification) -> serde_json::Value {
    if !notification.group.is_empty() {
        return group_payload(notification);
    }
    let name = escape(&notification.asset_name);
    let mut context = format!("asset `{}`", escape(&notification.asset_id));
    if let Some(incident) = notification.incident_id {
        context.push_str(&format!(" · incident `{incident}`"));
    }
    let mut text = format!("{}: {}", notification.headline(), notification.details);
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Service*\n{name}")}),
        json!({"type": "mrkdwn", "text": format!("*Status*\n{}", notification.event.as_str())}),
        json!({"type": "mrkdwn", "text": format!("*Time*\n{}", notification.timestamp.to_rfc3339())}),
    ];
    if let Some(tier) = notification.tier_text() {
        text.push_str(&format!(" ({tier})"));
        fields.push(json!({"type": "mrkdwn", "text": format!("*Escalation*\n{tier}")}));
    }
    json!({
        // Shown in push notifications and old clients, and parsed as mrkdwn like the blocks.
        "text": escape(&text),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(&notification.headline(), 150), "emoji": true},
            },
            {"type": "section", "fields": fields},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(&format!("*Details*\n{}", escape(&notification.details)), MAX_SECTION_TEXT)},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": context}],
            },
        ],
    })
}

/// A template's text as the message: one mrkdwn `text`, no blocks (the text is the message).
pub fn text(_notification: &Notification, text: &str) -> serde_json::Value {
    json!({"text": text})
}

/// A storm: the headline, then one bullet per asset (as many as fit in a section).
fn group_payload(notification: &Notification) -> serde_json::Value {
    let lines: Vec<String> = notification.group_lines().iter().map(|line| format!("• {}", escape(line))).collect();
    json!({
        "text": escape(&format!("{}: {}", notification.headline(), notification.details)),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(&notification.headline(), 150), "emoji": true},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(&lines.join("\n"), MAX_SECTION_TEXT)},
            },
        ],
    })
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions such as `<!channel>`); a probe's
/// error message must not become one. Escaped as Slack's formatting reference asks:
/// <https://api.slack.com/reference/surfaces/formatting#escaping>.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample, sample_group};
    use super::*;

    #[test]
    fn has_text_and_blocks() {
        let message = payload(&sample(Event::Down));
        assert_eq!(message["text"], "🔴 Production API - DOWN: HTTP 500 (expected 200)");
        let blocks = message["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[1]["fields"][0]["text"], "*Service*\nProduction API");
        assert_eq!(blocks[1]["fields"][1]["text"], "*Status*\nDOWN");
        assert_eq!(blocks[2]["text"]["text"], "*Details*\nHTTP 500 (expected 200)");
        assert_eq!(blocks[1]["fields"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn an_escalation_tier_is_named_in_the_text() {
        let message = payload(&Notification { tier: Some(1), ..sample(Event::Down) });
        assert_eq!(message["text"], "🔴 Production API - DOWN: HTTP 500 (expected 200) (tier 1)");
        assert_eq!(message["blocks"][1]["fields"][3]["text"], "*Escalation*\ntier 1");
    }

    #[test]
    fn markup_in_details_is_escaped() {
        let mut notification = sample(Event::Down);
        notification.details = "<!channel> & <http://evil|click>".into();
        let message = payload(&notification);
        assert_eq!(message["blocks"][2]["text"]["text"], "*Details*\n&lt;!channel&gt; &amp; &lt;http://evil|click&gt;");
    }

    #[test]
    fn markup_in_the_top_level_text_is_escaped_too() {
        let mut notification = sample(Event::Down);
        notification.asset_name = "A&B <ops>".into();
        notification.details = "<!channel> <http://evil|click>".into();
        let message = payload(&notification);
        assert_eq!(message["text"], "🔴 A&amp;B &lt;ops&gt; - DOWN: &lt;!channel&gt; &lt;http://evil|click&gt;");
    }

    #[test]
    fn a_group_is_one_message_with_a_line_per_asset() {
        let message = payload(&sample_group(20));
        assert_eq!(message["blocks"][0]["text"]["text"], "🔴 20 assets - DOWN");
        let list = message["blocks"][1]["text"]["text"].as_str().expect("list");
        assert_eq!(list.lines().count(), 20);
        assert!(
            list.starts_with("• API 0: HTTP 500 (expected 200) (incident 00000000-0000-0000-0000-000000000001)"),
            "{list}"
        );
    }
}
