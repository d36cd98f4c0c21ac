//! Mail in the stack's SMTP sink (`STACK_MAIL_DIR`, one `.eml` file per message with the SMTP
//! envelope prepended as `X-Envelope-To`). Every test mails its own unique addresses, so it
//! reads only its own mail however many tests share the sink.

use std::{path::PathBuf, time::Duration};

use mail_parser::MessageParser;

/// One received mail, parsed.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub envelope_to: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The single-use token of the link in this mail (`...?token=...`), from the text part.
    pub fn token(&self) -> String {
        let start = self
            .text
            .find("?token=")
            .unwrap_or_else(|| panic!("no link with a token in:\n{}", self.text))
            + "?token=".len();
        self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect()
    }

    /// The whole link carrying the token.
    pub fn link(&self) -> String {
        let token_at = self.text.find("?token=").expect("a link");
        let start = self.text[..token_at]
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + 1);
        self.text[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

fn mail_dir() -> PathBuf {
    std::env::var_os("STACK_MAIL_DIR")
        .map(PathBuf::from)
        .expect("STACK_MAIL_DIR is not set: run `eval \"$(scripts/stack env)\"` first")
}

/// Every mail the sink holds for `address` (envelope recipient), oldest first.
pub fn mails_to(address: &str) -> Vec<Mail> {
    let wanted = address.to_ascii_lowercase();
    let mut names: Vec<_> = std::fs::read_dir(mail_dir())
        .expect("mail dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
        .collect();
    names.sort();
    let mut mails = Vec::new();
    for name in names {
        let Ok(bytes) = std::fs::read(mail_dir().join(&name)) else {
            continue;
        };
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).to_ascii_lowercase();
        let Some(envelope_to) = head
            .lines()
            .find_map(|l| l.strip_prefix("x-envelope-to: "))
            .map(str::trim)
            .map(str::to_owned)
        else {
            continue;
        };
        if !envelope_to.split(", ").any(|r| r == wanted) {
            continue;
        }
        let message = MessageParser::default()
            .parse(&bytes)
            .unwrap_or_else(|| panic!("{name} is not a mail"));
        let addresses = |a: Option<&mail_parser::Address<'_>>| {
            a.and_then(|a| a.first())
                .map(|a| {
                    format!(
                        "{} <{}>",
                        a.name().unwrap_or_default(),
                        a.address().unwrap_or_default()
                    )
                })
                .unwrap_or_default()
        };
        mails.push(Mail {
            file: name,
            envelope_to,
            from: addresses(message.from()),
            to: addresses(message.to()),
            subject: message.subject().unwrap_or_default().to_owned(),
            message_id: message.message_id().unwrap_or_default().to_owned(),
            text: message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            html: message
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
        });
    }
    mails
}

/// Waits (up to `within`) until the sink holds at least `count` mails for `address`.
pub async fn wait_for_mail(address: &str, count: usize, within: Duration) -> Vec<Mail> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mails = mails_to(address);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} mail(s) for {address} after {within:?}, wanted {count}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
