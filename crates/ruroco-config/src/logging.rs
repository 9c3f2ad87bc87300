//! Where the daemons' log lines go, and in which form.
//!
//! - On a terminal or into a file: `2026-12-01T10:00:00Z  WARN rejected datagram from …`
//!   (`text`), or one JSON object per line with the event's fields (`json`, for log
//!   shippers: `--log-format json` or `log_format = "json"`).
//! - Under systemd (stderr is the journal stream `JOURNAL_STREAM` names): each line is
//!   sent to the journal natively, with `PRIORITY`, `SYSLOG_IDENTIFIER` and the event's
//!   fields (`REASON`, `SRC_IP`, `KEY`, `COMMAND`, `CLIENT_IP`, `OUTCOME`, …), so
//!   `journalctl -u ruroco REASON=replay` works. `MESSAGE` is exactly the text the stream
//!   carried before (`" WARN rejected datagram from … reason=…"`), which the fail2ban filter
//!   and people's searches match. If the journal socket cannot be reached (or
//!   `JOURNAL_STREAM` is set but stderr is not that stream), the line goes to stderr with a
//!   `<N>` priority prefix instead, which the journal also understands.
//!
//! The native journal writer is written here rather than taken from `tracing-journald`
//! because that crate puts only the bare message into `MESSAGE`: the level word in front,
//! which every existing filter matches, would be lost. The protocol is small (one datagram
//! of `NAME=value` lines, binary-safe length-prefixed values for those with a newline); its
//! encoding is held to the protocol's rules by the tests here, and the whole path by a test
//! against a real `systemd-journald`.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Where journald listens for native messages.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// At most this many fields of an event are sent (beyond the standard ones).
const MAX_FIELDS: usize = 16;
/// At most this many bytes of one field's value are sent.
const MAX_VALUE: usize = 64 * 1024;

/// The form of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (native journal entries under systemd).
    #[default]
    Text,
    /// One JSON object per line, with every field of the event.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format `{other}` (allowed: text, json)"
            )),
        }
    }
}

impl LogFormat {
    /// The format `log_format` in the config file at `path` asks for, if it can be read
    /// (before logging is set up; the full load reports any problem with the file).
    pub fn from_config_file(path: &std::path::Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let table: toml::Table = text.parse().ok()?;
        table.get("log_format")?.as_str()?.parse().ok()
    }
}

/// The syslog priority of a level (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug).
pub fn priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// The format asked for: `--log-format`, else `log_format` of the config file, else text.
pub fn log_format(flag: Option<LogFormat>, config: &std::path::Path) -> LogFormat {
    flag.or_else(|| LogFormat::from_config_file(config))
        .unwrap_or_default()
}

/// Sets up the daemons' logging (see the module's documentation): level from `RUROCO_LOG`
/// (default `info`), colour only on a terminal.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("RUROCO_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    if format == LogFormat::Json {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_env_filter(filter())
            .init();
        return;
    }
    let under_journal = std::env::var("JOURNAL_STREAM").ok();
    if let Some(stream) = under_journal {
        if stderr_is(&stream) {
            if let Some(journal) = Journal::connect(JOURNAL_SOCKET) {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(journal)
                    .init();
                return;
            }
        }
        // The journal stamps the time itself, and reads a `<N>` prefix as the line's
        // priority (then drops it): `journalctl -p warning` shows warnings and errors.
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_target(false)
            .with_ansi(false);
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .fmt_fields(MessageOnly)
            .event_format(Prioritized(format))
            .with_env_filter(filter())
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .fmt_fields(MessageOnly)
        .with_env_filter(filter())
        .init();
}

/// Whether stderr is the stream `JOURNAL_STREAM` (`device:inode`) names.
fn stderr_is(stream: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = stream.trim().split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Text lines show the message only: the fields an event carries for the journal and JSON
/// never change the text people and filters match.
struct MessageOnly;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for MessageOnly {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = Collect::default();
        fields.record(&mut visitor);
        writer.write_str(&visitor.message)
    }
}

/// A line format with the syslog priority of the event's level in front, for systemd's
/// journal stream.
struct Prioritized<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Prioritized<F>
where
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// An event's message and its other fields, as text.
#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.push((field.name(), format!("{value:?}")));
        }
    }
}

/// Sends each event to journald as one native datagram.
struct Journal {
    socket: UnixDatagram,
    identifier: String,
}

impl Journal {
    fn connect(path: &str) -> Option<Self> {
        let socket = UnixDatagram::unbound().ok()?;
        socket.connect(path).ok()?;
        let identifier = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "ruroco".to_owned());
        Some(Self { socket, identifier })
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Journal {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Collect::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let message = journal_message(level, &fields.message);
        let entry = encode(level, &self.identifier, &message, &fields.fields);
        if self.socket.send(&entry).is_err() {
            // Too large, or journald is gone: the stream still takes it.
            eprintln!("<{}>{message}", priority(level));
        }
    }
}

/// `MESSAGE`: the text the journal stream carried, level word (right-aligned to five
/// characters, as the line format writes it) and message.
fn journal_message(level: tracing::Level, message: &str) -> String {
    format!("{level:>5} {message}")
}

/// A field name as journald accepts it: upper-case letters, digits and `_`, not starting
/// with `_` or a digit, at most 64 characters.
fn journal_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with(|c: char| c == '_' || c.is_ascii_digit()) {
        out.remove(0);
    }
    out.truncate(64);
    if out.is_empty() {
        out.push_str("FIELD");
    }
    out
}

/// One native journal entry.
fn encode(
    level: tracing::Level,
    identifier: &str,
    message: &str,
    fields: &[(&'static str, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 128);
    put(&mut out, "PRIORITY", &priority(level).to_string());
    put(&mut out, "SYSLOG_IDENTIFIER", identifier);
    put(&mut out, "MESSAGE", message);
    for (name, value) in fields {
        let name = journal_name(name);
        if matches!(
            name.as_str(),
            "PRIORITY" | "SYSLOG_IDENTIFIER" | "MESSAGE" | "MESSAGE_ID"
        ) {
            continue;
        }
        put(&mut out, &name, value);
    }
    out
}

/// `NAME=value\n`, or for a value with a newline `NAME\n`, its length as 64-bit little
/// endian, the value and `\n`.
fn put(out: &mut Vec<u8>, name: &str, value: &str) {
    let mut end = value.len().min(MAX_VALUE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let value = value.get(..end).unwrap_or_default();
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an entry back as the protocol defines it.
    fn decode(mut data: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let line_end = data.iter().position(|&b| b == b'\n').unwrap();
            let line = &data[..line_end];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                fields.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                ));
                data = &data[line_end + 1..];
            } else {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let rest = &data[line_end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                let value = String::from_utf8(rest[8..8 + len].to_vec()).unwrap();
                assert_eq!(rest[8 + len], b'\n');
                fields.push((name, value));
                data = &rest[8 + len + 1..];
            }
        }
        fields
    }

    #[test]
    fn entries_decode_to_what_was_sent() {
        let fields = vec![
            ("reason", "replay".to_owned()),
            ("src_ip", "2001:db8::1".to_owned()),
            ("output", "two\nlines=x".to_owned()),
            ("message", "not twice".to_owned()),
        ];
        let entry = encode(
            tracing::Level::WARN,
            "ruroco-server",
            " WARN rejected datagram from 2001:db8::1 reason=replay",
            &fields,
        );
        assert_eq!(
            decode(&entry),
            [
                ("PRIORITY", "4"),
                ("SYSLOG_IDENTIFIER", "ruroco-server"),
                (
                    "MESSAGE",
                    " WARN rejected datagram from 2001:db8::1 reason=replay"
                ),
                ("REASON", "replay"),
                ("SRC_IP", "2001:db8::1"),
                ("OUTPUT", "two\nlines=x"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn field_names_follow_the_journal_rules() {
        assert_eq!(journal_name("src_ip"), "SRC_IP");
        assert_eq!(journal_name("_secret"), "SECRET");
        assert_eq!(journal_name("9lives.now"), "LIVES_NOW");
        assert_eq!(journal_name("___"), "FIELD");
        assert_eq!(journal_name(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let value = "é".repeat(MAX_VALUE);
        let mut out = Vec::new();
        put(&mut out, "X", &value);
        assert!(out.len() <= MAX_VALUE + 3);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("X=é"));
    }

    #[test]
    fn the_message_is_the_stream_text() {
        assert_eq!(journal_message(tracing::Level::WARN, "x"), " WARN x");
        assert_eq!(journal_message(tracing::Level::INFO, "x"), " INFO x");
        assert_eq!(journal_message(tracing::Level::ERROR, "x"), "ERROR x");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("unknown log format `xml` (allowed: text, json)".to_owned())
        );
    }
}
