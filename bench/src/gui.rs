//! The desktop app (its packaged build) in a real window under Xvfb (Mesa software rendering): how long until
//! its window shows, how much CPU it uses over 10 s of doing nothing (it should not
//! repaint when nothing changes), and the size of its binary.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::binaries::run;
use crate::report::{fmt, Report, Row};
use crate::stats::median;

/// How long the app is left alone before measuring, and how long it is measured.
const SETTLE: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(10);

/// Kills a process this benchmark started when it goes out of scope.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Measures `ruroco-gui` (built here in release mode) `repeat` times.
pub(crate) fn measure(root: &Path, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    for tool in ["Xvfb", "xdotool"] {
        if run(Command::new("sh").args(["-c", &format!("command -v {tool}")])).is_err() {
            eprintln!("gui: {tool} is not installed (apt install xvfb xdotool); skipped");
            return Ok(());
        }
    }
    eprintln!("building ruroco-gui (profile release-gui, as packaged) …");
    run(Command::new(env!("CARGO")).current_dir(root).args([
        "build",
        "--profile",
        "release-gui",
        "--locked",
        "--quiet",
        "-p",
        "ruroco-gui",
    ]))?;
    let bin = root.join("target/release-gui/ruroco-gui");
    let conf = tempfile::tempdir()?;
    std::fs::write(
        conf.path().join("client.toml"),
        "[servers.web1]\naddress = \"web1.example.com\"\nkey = \"web1.key\"\ncommand = \"open_ssh\"\ngroups = [\"prod\"]\n\n[servers.db]\naddress = \"db.example.com:8080\"\nkey = \"db.key\"\ngroups = [\"prod\"]\n",
    )?;
    let mut shown = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..repeat {
        let (first, cpu) = once(&bin, conf.path())?;
        shown.push(first.as_secs_f64() * 1000.0);
        idle.push(cpu.as_secs_f64() * 1000.0);
    }
    report.add(Row {
        figure: "ruroco-gui: window shown after start under Xvfb, ms".into(),
        ours: fmt(median(&shown), 0),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: "≤ 1000".into(),
    });
    report.add(Row {
        figure: format!("ruroco-gui: CPU time over {} s idle, ms", IDLE.as_secs()),
        ours: fmt(median(&idle), 0),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: "≤ 50".into(),
    });
    let size = std::fs::metadata(&bin)?.len() as f64 / 1_048_576.0;
    let stripped = tempfile::NamedTempFile::new()?;
    run(Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(stripped.path())
        .arg(&bin))?;
    let stripped = std::fs::metadata(stripped.path())?.len() as f64 / 1_048_576.0;
    report.add(Row {
        figure: "ruroco-gui: binary size, MiB (release / stripped as packaged)".into(),
        ours: format!("{size:.1} / {stripped:.1}"),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: "–".into(),
    });
    Ok(())
}

/// One run: a display of its own, the app on it; (time to its window, CPU while idle).
fn once(bin: &Path, conf: &Path) -> anyhow::Result<(Duration, Duration)> {
    let display = (90..200)
        .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .context("no free X display number")?;
    let display = format!(":{display}");
    let _xvfb = Owned(
        Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start Xvfb")?,
    );
    let socket = format!("/tmp/.X11-unix/X{}", display.trim_start_matches(':'));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&socket).exists() {
        if Instant::now() > deadline {
            bail!("Xvfb did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let gui = Owned(
        Command::new(bin)
            .env("DISPLAY", &display)
            .env("RUROCO_CONF_DIR", conf)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start ruroco-gui")?,
    );
    let pid = gui.0.id();
    let deadline = started + Duration::from_secs(20);
    let shown = loop {
        let found = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^ruroco$"])
            .env("DISPLAY", &display)
            .output()?;
        if found.status.success() && !found.stdout.is_empty() {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            bail!("no ruroco window within 20 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(SETTLE);
    let before = cpu(pid)?;
    std::thread::sleep(IDLE);
    let after = cpu(pid)?;
    Ok((shown, after.saturating_sub(before)))
}

/// User plus system CPU time of process `pid` (all its threads), from /proc.
fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()
            .context("bad /proc/PID/stat")
    };
    let total = ticks(11)? + ticks(12)?;
    // The kernel's clock tick is 100 Hz on Linux for these fields.
    Ok(Duration::from_millis(total * 10))
}
