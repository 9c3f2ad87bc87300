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

    /// The two families every daemon ends with: `<prefix>_start_time_seconds` (seconds
    /// since the Unix epoch) and `<prefix>_build_info` (always 1; version, commit and
    /// target as labels).
    pub fn process(&mut self, prefix: &str, start_time: f64, build: &Build<'_>) {
        let name = format!("{prefix}_start_time_seconds");
        self.family(
            &name,
            Kind::Gauge,
            "Start time of the process, seconds since the Unix epoch.",
        );
        self.sample(&name, &[], start_time);
        let name = format!("{prefix}_build_info");
        self.family(
            &name,
            Kind::Gauge,
            "Always 1; the version, git commit and target are labels.",
        );
        self.sample(
            &name,
            &[
                ("version", build.version),
                ("commit", build.commit),
                ("target", build.target),
            ],
            1.0,
        );
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// What a build is, for `<prefix>_build_info`.
#[derive(Debug, Clone, Copy)]
pub struct Build<'a> {
    /// The crate version.
    pub version: &'a str,
    /// The git commit it was built from.
    pub commit: &'a str,
    /// The target triple.
    pub target: &'a str,
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
    /// Where a link at `path` may lead (see [`MetricsFile::through_link_into`]).
    link_into: Option<PathBuf>,
    written: Option<Instant>,
}

impl MetricsFile {
    /// `<dir>/<name>.prom`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(format!("{name}.prom")),
            link_into: None,
            written: None,
        }
    }

    /// Where `<dir>/<name>.prom` is a symbolic link that root made and that points to a
    /// file directly in `into`, writes that file (made atomically there) and leaves the
    /// link alone: the server's user may not write node_exporter's directory, where
    /// root's link names a file of the server's own. Any other link is refused, never
    /// followed: whoever can write node_exporter's directory could otherwise aim the
    /// server's writes at a file of the server's (its replay floors). Only for a daemon
    /// that runs unprivileged; root's never follows a link at all.
    pub fn through_link_into(mut self, into: &Path) -> Self {
        self.link_into = Some(into.to_owned());
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file actually written: the path, or where its link points when writing
    /// through a link (a relative target is taken from the link's directory); an error
    /// for a link that is not followed, saying why and how to make the right one.
    pub fn destination(&self) -> std::io::Result<PathBuf> {
        let Some(into) = &self.link_into else {
            return Ok(self.path.clone());
        };
        let meta = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => meta,
            _ => return Ok(self.path.clone()),
        };
        let target = std::fs::read_link(&self.path)?;
        let target = match self.path.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
        let fix = || {
            format!(
                "as root: ln -sfn {}/{} {}",
                into.display(),
                self.path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                self.path.display()
            )
        };
        let refuse = |why: String| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} {why}; not followed ({})", self.path.display(), fix()),
            )
        };
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != 0 {
            return Err(refuse(format!(
                "is a link made by uid {}, not by root",
                meta.uid()
            )));
        }
        let same_dir = match (
            target.parent().map(std::fs::canonicalize),
            std::fs::canonicalize(into),
        ) {
            (Some(Ok(parent)), Ok(into)) => parent == into,
            _ => false,
        };
        if !same_dir || target.file_name().is_none() {
            return Err(refuse(format!(
                "links to {}, which is not directly in {}",
                target.display(),
                into.display()
            )));
        }
        Ok(target)
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
        self.write(&text, now)
            .map_err(|e| match self.destination() {
                Ok(destination) if destination != self.path => format!(
                    "cannot write metrics file {} (linked from {}): {e}",
                    destination.display(),
                    self.path.display()
                ),
                Ok(_) => format!("cannot write metrics file {}: {e}", self.path.display()),
                Err(_) => format!("cannot write metrics file: {e}"),
            })
    }

    /// Replaces the file with `text` (world-readable, for node_exporter).
    pub fn write(&mut self, text: &str, now: Instant) -> std::io::Result<()> {
        self.written = Some(now);
        ruroco_fs::write_atomically_mode(&self.destination()?, text.as_bytes(), 0o644)
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

    /// A link into another directory than the one named is refused and nothing is
    /// written where it points; so is one root did not make (where tests run as root).
    #[test]
    fn a_link_elsewhere_or_not_roots_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let collector = dir.path().join("collector");
        let own = dir.path().join("own");
        let elsewhere = dir.path().join("floors");
        for d in [&collector, &own, &elsewhere] {
            std::fs::create_dir_all(d).unwrap();
        }
        let victim = elsewhere.join("floors.bin");
        std::fs::write(&victim, b"floors").unwrap();
        let link = collector.join("ruroco-server.prom");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let mut f = MetricsFile::new(&collector, "ruroco-server").through_link_into(&own);
        let err = f
            .write_if_due(Instant::now(), true, || "a 1\n".into())
            .unwrap_err();
        assert!(
            err.contains("not directly in") && err.contains("ln -sfn"),
            "{err}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"floors");
        // Relative `..` tricks resolve to the same refusal.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("../own/../floors/floors.bin", &link).unwrap();
        assert!(f.write("a 1\n", Instant::now()).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"floors");
        if nix_is_root() {
            // Into the right directory, but made by another user.
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(own.join("ruroco-server.prom"), &link).unwrap();
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            let err = f
                .write_if_due(Instant::now(), true, || "a 1\n".into())
                .unwrap_err();
            assert!(err.contains("made by uid 65534, not by root"), "{err}");
            assert!(!own.join("ruroco-server.prom").exists());
        }
    }

    fn nix_is_root() -> bool {
        std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
    }

    #[test]
    fn through_a_link_the_target_is_replaced_and_the_link_kept() {
        if !nix_is_root() {
            eprintln!("not root: skipped (only root's links are followed)");
            return;
        }
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
        let mut f = MetricsFile::new(&collector, "ruroco-server").through_link_into(&own);
        assert_eq!(f.destination().unwrap(), own.join("ruroco-server.prom"));
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
        // Without through_link_into, the link itself is replaced by a file: root never writes
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
