//! Telegram Bot API: `POST /bot<botToken>/sendMessage` with `chat_id`, an optional
//! `message_thread_id` (a forum topic) and text in MarkdownV2
//! (<https://core.telegram.org/bots/api#sendmessage>, escaping as
//! <https://core.telegram.org/bots/api#markdownv2-style> asks). The token is in the URL's path:
//! delivery errors never show the URL.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Api, Key, Notification, Request, truncate};
use crate::redact::Secret;

/// `{"type": "telegram", "botToken": "123:ABC…", "chatId": -1001234567890, "messageThreadId": 42}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub bot_token: Secret,
    /// A chat's number, or a public channel's `@name`.
    pub chat_id: ChatId,
    #[serde(default)]
    pub message_thread_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

/// Room for the text's markup within Telegram's 4096 characters.
const MAX_TEXT: usize = 3500;

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::secret("botToken"), Key::required("chatId"), Key::optional("messageThreadId")];
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://api.telegram.org");

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let text = format!(
            "*{}*\n{}",
            escape(&notification.headline()),
            escape(&truncate(&notification.plain_text(), MAX_TEXT))
        );
        let mut body = json!({
            "chat_id": self.chat_id,
            "text": text,
            "parse_mode": "MarkdownV2",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(thread) = self.message_thread_id {
            body["message_thread_id"] = json!(thread);
        }
        Request::post(format!("{base}/bot{}/sendMessage", self.bot_token.expose()), body)
    }

    /// A template's text, sent as plain text (no `parse_mode`): what the template writes is
    /// what the chat shows, nothing to escape.
    fn with_text(&self, request: &mut Request, text: &str) {
        request.body["text"] = json!(truncate(text, 4096));
        if let Some(body) = request.body.as_object_mut() {
            body.remove("parse_mode");
        }
    }
}

/// Every character MarkdownV2 reserves, backslash-escaped, so that a probe's message stays text.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "_*[]()~`>#+-=|{}.!\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn sends_escaped_markdown_to_the_chat_and_thread() {
        let settings =
            Settings { bot_token: Secret::new("1:T0K"), chat_id: ChatId::Id(-100), message_thread_id: Some(7) };
        let request = settings.request("https://tg", &sample(Event::Down));
        assert_eq!(request.url, "https://tg/bot1:T0K/sendMessage");
        assert_eq!(request.body["chat_id"], -100);
        assert_eq!(request.body["message_thread_id"], 7);
        assert_eq!(request.body["parse_mode"], "MarkdownV2");
        let text = request.body["text"].as_str().expect("text");
        assert!(text.starts_with("*🔴 Production API \\- DOWN*\nHTTP 500 \\(expected 200\\)\n"), "{text}");
        let named = Settings { chat_id: ChatId::Name("@ops".into()), message_thread_id: None, ..settings };
        let request = named.request("https://tg", &sample(Event::Down));
        assert_eq!((request.body["chat_id"].as_str(), request.body.get("message_thread_id")), (Some("@ops"), None));
    }

    #[test]
    fn every_reserved_character_is_escaped() {
        assert_eq!(
            escape("a_b*c[d](e)~`>#+-=|{}.!\\"),
            "a\\_b\\*c\\[d\\]\\(e\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\"
        );
    }
}
