//! What follows a finished job: its log line and metrics, the undo it schedules (made
//! durable before the line is written), and the hooks of each event.

use std::net::IpAddr;
use std::time::Duration;

use crate::clock::{now_unix_ms, utc};
use crate::commands::CommandSpec;
use crate::hooks::{Event, Occurrence, MAX_RUNNING_HOOKS};
use crate::runner::{Done, Outcome, Spawn};
use crate::service::{Service, Tag};
use crate::undo::PendingUndo;

impl Service {
    /// Logs a finished job and does what follows from it.
    pub(crate) fn finished(&mut self, done: Done<Tag>) {
        let Done {
            tag,
            outcome,
            duration,
            stdout,
            stderr,
        } = done;
        let ms = duration.as_millis();
        let detail = match &outcome {
            Outcome::Exited(status) => format!("({status}) in {ms} ms"),
            Outcome::TimedOut => format!("after {ms} ms; process group killed"),
            Outcome::SpawnFailed(e) => format!("could not be started: {e}"),
        };
        let event = match &outcome {
            _ if outcome.success() => Event::Success,
            Outcome::TimedOut => Event::Timeout,
            _ => Event::Failure,
        };
        let verb = match event {
            Event::Success => "succeeded",
            Event::Timeout => "timed out",
            _ => "failed",
        };
        let outcome_label = event.as_str();
        // Per kind: the bookkeeping, what the line is about, and the hook that follows.
        // (what ran, for the journal's and JSON's fields)
        let about: (&'static str, String, Option<IpAddr>);
        let (subject, note, hook) = match tag {
            Tag::Command { spec, ip } => {
                self.gate.finished(&spec.name);
                self.metrics
                    .command(&spec.name, outcome_label, duration.as_secs_f64());
                // Durable before the run is reported.
                let note = match &spec.undo {
                    Some(undo) if event == Event::Success => self.schedule_undo(&spec, undo, ip),
                    _ => String::new(),
                };
                let subject = format!("command {} for {ip}", spec.name);
                about = ("command", spec.name.clone(), Some(ip));
                (subject, note, Some((event, spec.name.clone(), ip)))
            }
            Tag::Undo(ticket) => {
                self.metrics.undo(outcome_label);
                if self.undos.finished(&ticket) {
                    self.save_undos();
                }
                let u = ticket.undo;
                let subject = format!("undo of {} for {}", u.command, u.ip);
                about = ("undo", u.command.clone(), Some(u.ip));
                (subject, String::new(), Some((Event::Undo, u.command, u.ip)))
            }
            Tag::Hook { event: e, command } => {
                // A hook never triggers another hook.
                self.metrics.hook(e.as_str(), outcome_label);
                about = ("hook", command.clone(), None);
                (
                    format!("hook on_{} for {command}", e.as_str()),
                    String::new(),
                    None,
                )
            }
        };
        let line = format!("{subject} {verb} {detail}{note}; stdout={stdout:?} stderr={stderr:?}");
        let (kind, command, ip) = about;
        let client_ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let exit_status = outcome.code().map(|c| c.to_string()).unwrap_or_default();
        if event == Event::Success {
            tracing::info!(
                kind,
                command,
                client_ip,
                outcome = outcome_label,
                exit_status,
                duration_ms = ms,
                "{line}"
            );
        } else {
            tracing::warn!(
                kind,
                command,
                client_ip,
                outcome = outcome_label,
                exit_status,
                duration_ms = ms,
                "{line}"
            );
        }
        if let Some((event, command, ip)) = hook {
            self.hook(event, &command, ip, outcome.code(), duration, None);
        }
    }

    /// Schedules the undo of a successful run and makes it durable before the run is
    /// reported; returns the text for the report line.
    fn schedule_undo(
        &mut self,
        spec: &CommandSpec,
        undo: &crate::commands::UndoSpec,
        ip: IpAddr,
    ) -> String {
        let after = u64::try_from(undo.after.as_millis()).unwrap_or(u64::MAX);
        let due = now_unix_ms().saturating_add(after);
        let pending = PendingUndo {
            command: spec.name.clone(),
            ip,
            due_unix_ms: due,
            undo: undo.cmd.clone(),
            timeout_sec: spec.timeout.as_secs(),
        };
        if self.undos.schedule(pending).is_err() {
            // Admission checked for room; this is only reached if that changed.
            tracing::error!(
                "undo of {} for {ip} NOT scheduled: {} undos pending already",
                spec.name,
                self.undos.len()
            );
            return "; undo NOT scheduled".into();
        }
        self.save_undos();
        format!("; undo due {}", utc(due))
    }

    pub(crate) fn save_undos(&self) {
        if let Err(e) = self.store.save(&self.undos) {
            tracing::error!(
                "cannot save pending undos to {}: {e}; they are kept in memory and run while the commander stays up",
                self.store.path().display()
            );
        }
    }

    pub(crate) fn refused(&mut self, command: &str, ip: IpAddr, reason: &'static str) {
        self.metrics.refused(command, reason);
        self.hook(
            Event::Refused,
            command,
            ip,
            None,
            Duration::ZERO,
            Some(reason),
        );
    }

    /// Starts the hook of `event`, if there is one and room for it.
    fn hook(
        &mut self,
        event: Event,
        command: &str,
        ip: IpAddr,
        exit: Option<i32>,
        duration: Duration,
        reason: Option<&'static str>,
    ) {
        let Some(line) = self.commands.hooks.line(event) else {
            return;
        };
        if self.runner.count(|t| matches!(t, Tag::Hook { .. })) >= MAX_RUNNING_HOOKS {
            self.metrics.hook(event.as_str(), "dropped");
            tracing::warn!(
                "hook on_{} for {command} dropped: {MAX_RUNNING_HOOKS} hooks are running",
                event.as_str()
            );
            return;
        }
        let occurrence = Occurrence {
            event,
            command: command.to_owned(),
            ip,
            exit,
            duration,
            reason,
        };
        let job = Spawn {
            line: line.to_owned(),
            env: occurrence.env(),
            timeout: self.commands.hooks.timeout,
            tag: Tag::Hook {
                event,
                command: command.to_owned(),
            },
        };
        if let Err(done) = self.runner.start(job) {
            // A hook never triggers another hook: this only logs.
            self.finished(done);
        }
    }
}
