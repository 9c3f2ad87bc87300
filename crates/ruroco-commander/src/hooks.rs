//! `[hooks]` of `commands.toml`: a shell line per event, run after the fact, never in the
//! way of a command.
//!
//! ```toml
//! [hooks]
//! on_success = "curl -fsS -d \"$RUROCO_COMMAND for $RUROCO_IP\" https://ntfy.example/ops"
//! on_failure = "…"; on_timeout = "…"; on_refused = "…"; on_undo = "…"
//! timeout_sec = 10
//! ```
//!
//! A hook runs as `sh -c` with `RUROCO_EVENT`, `RUROCO_COMMAND`, `RUROCO_IP`,
//! `RUROCO_EXIT` (when there is an exit status), `RUROCO_DURATION_MS` and, for refusals,
//! `RUROCO_REASON`. It has its own timeout, never triggers another hook, and at most
//! [`MAX_RUNNING_HOOKS`] run at once: past that an event's hook is dropped with a log line.
//! This module is the pure part: which line runs for which event, with which environment.

use std::net::IpAddr;
use std::time::Duration;

use crate::values::{seconds, shell};

/// Default time a hook may run before its process group is killed.
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Hooks running at once; beyond this a hook is dropped (and logged), never queued.
pub(crate) const MAX_RUNNING_HOOKS: usize = 8;

/// What happened, as hooks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A command exited 0.
    Success,
    /// A command exited non-zero, was killed by a signal or could not be started.
    Failure,
    /// A command ran out of time; its process group was killed.
    Timeout,
    /// A request was refused before anything ran (cooldown, single flight, busy, …).
    Refused,
    /// An undo ran (whatever its result; see `RUROCO_EXIT`).
    Undo,
}

impl Event {
    /// The value of `RUROCO_EVENT`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Event::Success => "success",
            Event::Failure => "failure",
            Event::Timeout => "timeout",
            Event::Refused => "refused",
            Event::Undo => "undo",
        }
    }
}

/// The configured hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hooks {
    on_success: Option<String>,
    on_failure: Option<String>,
    on_timeout: Option<String>,
    on_refused: Option<String>,
    on_undo: Option<String>,
    pub(crate) timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            on_success: None,
            on_failure: None,
            on_timeout: None,
            on_refused: None,
            on_undo: None,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

impl Hooks {
    /// Parses a `[hooks]` table; the error names the key.
    pub(crate) fn from_table(table: toml::Table) -> Result<Self, String> {
        let mut hooks = Hooks::default();
        for (key, value) in table {
            let slot = match key.as_str() {
                "on_success" => &mut hooks.on_success,
                "on_failure" => &mut hooks.on_failure,
                "on_timeout" => &mut hooks.on_timeout,
                "on_refused" => &mut hooks.on_refused,
                "on_undo" => &mut hooks.on_undo,
                "timeout_sec" => {
                    hooks.timeout = seconds("timeout_sec", value)?;
                    continue;
                }
                _ => {
                    return Err(format!(
                        "unknown key `{key}` (allowed: {})",
                        ruroco_config::fields::HOOK_KEYS.allowed()
                    ))
                }
            };
            *slot = Some(shell(&key, value)?);
        }
        Ok(hooks)
    }

    /// The shell line for `event`, if one is configured.
    pub(crate) fn line(&self, event: Event) -> Option<&str> {
        match event {
            Event::Success => self.on_success.as_deref(),
            Event::Failure => self.on_failure.as_deref(),
            Event::Timeout => self.on_timeout.as_deref(),
            Event::Refused => self.on_refused.as_deref(),
            Event::Undo => self.on_undo.as_deref(),
        }
    }
}

/// What a hook is told about the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Occurrence {
    pub(crate) event: Event,
    pub(crate) command: String,
    pub(crate) ip: IpAddr,
    /// The exit code, when the process exited (not for timeouts, signals or refusals).
    pub(crate) exit: Option<i32>,
    pub(crate) duration: Duration,
    /// Why a request was refused.
    pub(crate) reason: Option<&'static str>,
}

impl Occurrence {
    /// The hook's environment.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("RUROCO_EVENT", self.event.as_str().to_owned()),
            ("RUROCO_COMMAND", self.command.clone()),
            ("RUROCO_IP", self.ip.to_string()),
            ("RUROCO_DURATION_MS", self.duration.as_millis().to_string()),
        ];
        if let Some(exit) = self.exit {
            env.push(("RUROCO_EXIT", exit.to_string()));
        }
        if let Some(reason) = self.reason {
            env.push(("RUROCO_REASON", reason.to_owned()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn each_event_has_its_line_and_timeout() {
        let hooks = Hooks::from_table(table(
            "on_success = \"s\"\non_failure = \"f\"\non_timeout = \"t\"\non_refused = \"r\"\non_undo = \"u\"\ntimeout_sec = 3\n",
        ))
        .unwrap();
        for (event, line) in [
            (Event::Success, "s"),
            (Event::Failure, "f"),
            (Event::Timeout, "t"),
            (Event::Refused, "r"),
            (Event::Undo, "u"),
        ] {
            assert_eq!(hooks.line(event), Some(line));
        }
        assert_eq!(hooks.timeout, Duration::from_secs(3));
        let none = Hooks::default();
        assert_eq!(none.line(Event::Success), None);
        assert_eq!(none.timeout, DEFAULT_HOOK_TIMEOUT);
    }

    #[test]
    fn bad_hooks_are_named() {
        for (text, key) in [
            ("on_sucess = \"x\"\n", "on_sucess"),
            ("on_success = 1\n", "on_success"),
            ("on_undo = \" \"\n", "on_undo"),
            ("timeout_sec = 0\n", "timeout_sec"),
        ] {
            let err = Hooks::from_table(table(text)).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn environment_has_exit_and_reason_only_when_known() {
        let mut o = Occurrence {
            event: Event::Failure,
            command: "deploy".into(),
            ip: "192.0.2.7".parse().unwrap(),
            exit: Some(3),
            duration: Duration::from_millis(1234),
            reason: None,
        };
        let env = o.env();
        assert!(env.contains(&("RUROCO_EVENT", "failure".into())));
        assert!(env.contains(&("RUROCO_COMMAND", "deploy".into())));
        assert!(env.contains(&("RUROCO_IP", "192.0.2.7".into())));
        assert!(env.contains(&("RUROCO_EXIT", "3".into())));
        assert!(env.contains(&("RUROCO_DURATION_MS", "1234".into())));
        assert!(!env.iter().any(|(k, _)| *k == "RUROCO_REASON"));
        o.exit = None;
        o.event = Event::Refused;
        o.reason = Some("cooldown");
        let env = o.env();
        assert!(!env.iter().any(|(k, _)| *k == "RUROCO_EXIT"));
        assert!(env.contains(&("RUROCO_REASON", "cooldown".into())));
    }
}
