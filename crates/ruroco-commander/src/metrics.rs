//! The commander's metrics: commands by name and outcome, refusals by reason, durations,
//! undos, hooks and reloads. Command names come from `commands.toml` (a bounded set); at
//! most [`MAX_NAMES`] distinct names are kept, further ones count as `_other`.

use std::collections::BTreeMap;

use ruroco_metrics::{Exposition, Histogram, Kind, COMMAND_BUCKETS};

/// Distinct command names tracked.
pub(crate) const MAX_NAMES: usize = 1024;

/// Counters and histograms since the start.
#[derive(Debug, Default)]
pub(crate) struct CommanderMetrics {
    commands: BTreeMap<(String, &'static str), u64>,
    refusals: BTreeMap<(String, &'static str), u64>,
    durations: BTreeMap<String, Histogram>,
    undos: BTreeMap<&'static str, u64>,
    hooks: BTreeMap<(&'static str, &'static str), u64>,
    unknown_commands: u64,
    reloads: BTreeMap<&'static str, u64>,
    start_time: f64,
    /// Whether the commands file is refused now (anyone but root could change it).
    pub(crate) commands_refused: bool,
}

impl CommanderMetrics {
    pub(crate) fn new(start_time: f64) -> Self {
        Self {
            start_time,
            ..Self::default()
        }
    }

    fn name(&self, name: &str) -> String {
        let known = self.durations.contains_key(name)
            || self.commands.keys().any(|(n, _)| n == name)
            || self.refusals.keys().any(|(n, _)| n == name);
        if known || self.durations.len() < MAX_NAMES {
            name.to_owned()
        } else {
            "_other".to_owned()
        }
    }

    /// A command finished: `outcome` is success, failure or timeout.
    pub(crate) fn command(&mut self, name: &str, outcome: &'static str, seconds: f64) {
        let name = self.name(name);
        *self.commands.entry((name.clone(), outcome)).or_default() += 1;
        self.durations
            .entry(name)
            .or_insert_with(|| Histogram::new(COMMAND_BUCKETS))
            .observe(seconds);
    }

    /// A request was refused before anything ran.
    pub(crate) fn refused(&mut self, name: &str, reason: &'static str) {
        let name = self.name(name);
        *self.commands.entry((name.clone(), "refused")).or_default() += 1;
        *self.refusals.entry((name, reason)).or_default() += 1;
    }

    pub(crate) fn unknown_command(&mut self) {
        self.unknown_commands += 1;
    }

    pub(crate) fn undo(&mut self, outcome: &'static str) {
        *self.undos.entry(outcome).or_default() += 1;
    }

    /// A hook ended (success, failure, timeout) or was dropped.
    pub(crate) fn hook(&mut self, event: &'static str, outcome: &'static str) {
        *self.hooks.entry((event, outcome)).or_default() += 1;
    }

    pub(crate) fn reload(&mut self, ok: bool) {
        *self
            .reloads
            .entry(if ok { "ok" } else { "failed" })
            .or_default() += 1;
    }

    /// The exposition text, with the current gauges.
    pub(crate) fn render(&self, running: usize, pending_undos: usize) -> String {
        let mut e = Exposition::new();
        let name = "ruroco_commander_commands_total";
        e.family(
            name,
            Kind::Counter,
            "Requests for a configured command, by name and outcome (success, failure, timeout, refused).",
        );
        for ((command, outcome), n) in &self.commands {
            e.sample(
                name,
                &[("command", command), ("outcome", outcome)],
                *n as f64,
            );
        }
        let name = "ruroco_commander_refusals_total";
        e.family(
            name,
            Kind::Counter,
            "Refused requests, by command and reason.",
        );
        for ((command, reason), n) in &self.refusals {
            e.sample(name, &[("command", command), ("reason", reason)], *n as f64);
        }
        let name = "ruroco_commander_command_duration_seconds";
        e.family(name, Kind::Histogram, "Run time of commands, by name.");
        for (command, h) in &self.durations {
            e.histogram(name, &[("command", command)], h);
        }
        let name = "ruroco_commander_unknown_commands_total";
        e.family(
            name,
            Kind::Counter,
            "Messages naming a command hash that is not configured.",
        );
        e.sample(name, &[], self.unknown_commands as f64);
        let name = "ruroco_commander_undos_total";
        e.family(
            name,
            Kind::Counter,
            "Undos, by outcome (success, failure, timeout; refused: the stored line is not the one commands.toml holds now).",
        );
        for outcome in ["success", "failure", "timeout", "refused"] {
            let n = self.undos.get(outcome).copied().unwrap_or(0);
            e.sample(name, &[("outcome", outcome)], n as f64);
        }
        let name = "ruroco_commander_hooks_total";
        e.family(
            name,
            Kind::Counter,
            "Hooks, by event and outcome (success, failure, timeout, dropped).",
        );
        for ((event, outcome), n) in &self.hooks {
            e.sample(name, &[("event", event), ("outcome", outcome)], *n as f64);
        }
        let name = "ruroco_commander_running";
        e.family(name, Kind::Gauge, "Commands, undos and hooks running now.");
        e.sample(name, &[], running as f64);
        let name = "ruroco_commander_pending_undos";
        e.family(name, Kind::Gauge, "Undos scheduled and not yet done.");
        e.sample(name, &[], pending_undos as f64);
        let name = "ruroco_commander_reloads_total";
        e.family(
            name,
            Kind::Counter,
            "Reloads of commands.toml (SIGHUP), by result.",
        );
        for result in ["ok", "failed"] {
            let n = self.reloads.get(result).copied().unwrap_or(0);
            e.sample(name, &[("result", result)], n as f64);
        }
        let name = "ruroco_commander_commands_file_refused";
        e.family(
            name,
            Kind::Gauge,
            "1 while the commands file is refused because someone other than root could change it: no command runs, pending undos do.",
        );
        e.sample(name, &[], f64::from(u8::from(self.commands_refused)));
        e.process(
            "ruroco_commander",
            self.start_time,
            &ruroco_metrics::Build {
                version: ruroco_config::VERSION,
                commit: ruroco_config::COMMIT,
                target: ruroco_config::TARGET,
            },
        );
        e.finish()
    }
}
