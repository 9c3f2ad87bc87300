//! Metrics in the Prometheus text exposition format, for node_exporter's textfile
//! collector: each daemon renders its own file and [`MetricsFile`] replaces it atomically
//! (temp + rename, mode 0644) every [`WRITE_EVERY`] and at shutdown. No network: the
//! daemons never listen for scrapes.
//!
//! [`Exposition`] writes families (`# HELP`, `# TYPE`, samples) with escaped label values;
//! [`Histogram`] has fixed buckets. Label values must come from bounded sets (reasons,
//! configured command names), never from the wire.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a daemon rewrites its metrics file.
pub const WRITE_EVERY: Duration = Duration::from_secs(15);

/// Bucket bounds for short durations (floor writes), in seconds.
pub const FAST_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Bucket bounds for command durations, in seconds.
pub const COMMAND_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Observations in fixed buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative count per bucket; the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value.
    pub fn observe(&mut self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: its help text and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        push_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// The samples of one labelled histogram of the current family.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| number(*b));
            let _ = write!(self.out, "{name}_bucket");
            push_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        push_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(h.sum));
        let _ = write!(self.out, "{name}_count");
        push_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn push_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out.push('}');
}

/// A value as Prometheus writes it: integers without a fraction.
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The metrics file of one daemon, rewritten now and then.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
    through_link: bool,
    written: Option<Instant>,
}

impl MetricsFile {
    /// `<dir>/<name>.prom`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(format!("{name}.prom")),
            through_link: false,
            written: None,
        }
    }

    /// Where `<dir>/<name>.prom` is a symbolic link, writes the file it points to (made
    /// atomically in that file's directory) and leaves the link alone: the server's user
    /// may not write node_exporter's directory, where root's link names a file of its own.
    /// Only for a daemon that runs unprivileged; root's never follows a link (one planted
    /// by another user would aim root's writes).
    pub fn through_link(mut self) -> Self {
        self.through_link = true;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file actually written: the path, or where its link points when writing
    /// through a link (a relative target is taken from the link's directory).
    pub fn destination(&self) -> PathBuf {
        if self.through_link {
            if let Ok(target) = std::fs::read_link(&self.path) {
                return match self.path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
        }
        self.path.clone()
    }

    /// Whether [`WRITE_EVERY`] has passed since the last write (or there was none).
    pub fn due(&self, now: Instant) -> bool {
        self.written
            .is_none_or(|at| now.saturating_duration_since(at) >= WRITE_EVERY)
    }

    /// Renders and writes the file if it is due (or now, with `force`); the error names
    /// the file. `render` only runs when the file is written.
    pub fn write_if_due(
        &mut self,
        now: Instant,
        force: bool,
        render: impl FnOnce() -> String,
    ) -> Result<(), String> {
        if !force && !self.due(now) {
            return Ok(());
        }
        let text = render();
        self.write(&text, now).map_err(|e| {
            let destination = self.destination();
            if destination == self.path {
                format!("cannot write metrics file {}: {e}", self.path.display())
            } else {
                format!(
                    "cannot write metrics file {} (linked from {}): {e}",
                    destination.display(),
                    self.path.display()
                )
            }
        })
    }

    /// Replaces the file with `text` (world-readable, for node_exporter).
    pub fn write(&mut self, text: &str, now: Instant) -> std::io::Result<()> {
        self.written = Some(now);
        ruroco_fs::write_atomically_mode(&self.destination(), text.as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_families_samples_and_histograms() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Things.");
        e.sample("x_total", &[("reason", "a\"b\\c\nd")], 3.0);
        e.family("d_seconds", Kind::Histogram, "Durations.");
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        e.histogram("d_seconds", &[("command", "deploy")], &h);
        e.family("g", Kind::Gauge, "A gauge.");
        e.sample("g", &[], 0.25);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{reason=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{command=\"deploy\",le=\"0.1\"} 1\n\
             d_seconds_bucket{command=\"deploy\",le=\"1\"} 2\n\
             d_seconds_bucket{command=\"deploy\",le=\"+Inf\"} 3\n\
             d_seconds_sum{command=\"deploy\"} 5.55\n\
             d_seconds_count{command=\"deploy\"} 3\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 0.25\n"
        );
    }

    #[test]
    fn the_file_is_replaced_world_readable_and_paced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut f = MetricsFile::new(dir.path(), "ruroco-server");
        let now = Instant::now();
        assert!(f.due(now));
        f.write("a 1\n", now).unwrap();
        assert!(!f.due(now + Duration::from_secs(1)));
        assert!(f.due(now + WRITE_EVERY));
        let meta = std::fs::metadata(f.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "a 1\n");
        // Not due: nothing rendered; forced: written.
        f.write_if_due(now, false, || unreachable!()).unwrap();
        f.write_if_due(now, true, || "b 2\n".into()).unwrap();
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "b 2\n");
    }

    #[test]
    fn through_a_link_the_target_is_replaced_and_the_link_kept() {
        let dir = tempfile::tempdir().unwrap();
        let collector = dir.path().join("collector");
        let own = dir.path().join("own");
        std::fs::create_dir_all(&collector).unwrap();
        std::fs::create_dir_all(&own).unwrap();
        std::os::unix::fs::symlink(
            own.join("ruroco-server.prom"),
            collector.join("ruroco-server.prom"),
        )
        .unwrap();
        let mut f = MetricsFile::new(&collector, "ruroco-server").through_link();
        assert_eq!(f.destination(), own.join("ruroco-server.prom"));
        f.write("a 1\n", Instant::now()).unwrap();
        assert_eq!(
            std::fs::read_to_string(own.join("ruroco-server.prom")).unwrap(),
            "a 1\n"
        );
        assert!(
            std::fs::symlink_metadata(collector.join("ruroco-server.prom"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Read through the link, as node_exporter does.
        assert_eq!(
            std::fs::read_to_string(collector.join("ruroco-server.prom")).unwrap(),
            "a 1\n"
        );
        // Without through_link, the link itself is replaced by a file: root never writes
        // where a link points.
        let mut plain = MetricsFile::new(&collector, "ruroco-server");
        plain.write("b 2\n", Instant::now()).unwrap();
        assert!(
            std::fs::symlink_metadata(collector.join("ruroco-server.prom"))
                .unwrap()
                .is_file()
        );
        assert_eq!(
            std::fs::read_to_string(own.join("ruroco-server.prom")).unwrap(),
            "a 1\n"
        );
    }
}
