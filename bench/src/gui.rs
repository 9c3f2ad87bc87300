//! The desktop app (its packaged build) in a real window under Xvfb (Mesa software
//! rendering): how long until its window shows, its resident memory, how much CPU it uses
//! over 10 s of doing nothing (it should not repaint when nothing changes) and over 10 s
//! with the cursor blinking in the filter, click to command (a real server and commander
//! on loopback, the first row's Send clicked with the pointer, until the command has run),
//! and the size of its binary.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::binaries::{run, Binaries};
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

/// Clicks on Send measured per run (each past the window's double-click guard).
const CLICKS: usize = 10;

/// What one run measured.
struct Run {
    shown: Duration,
    rss_kib: u64,
    idle: Duration,
    focused: Duration,
    /// Click to the command's first line, ms, one per click.
    clicks: Vec<f64>,
}

/// Measures `ruroco-gui` (built here in release mode) `repeat` times.
pub(crate) fn measure(
    root: &Path,
    bins: &Binaries,
    repeat: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
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
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let stack = crate::stack::Stack::start(bins)?;
        let conf = tempfile::tempdir()?;
        let key = conf.path().join("local.key");
        std::fs::write(&key, stack.key.to_key_string().as_bytes())?;
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::fs::write(
            conf.path().join("client.toml"),
            format!(
                "[servers.local]\naddress = \"{}\"\nkey = \"local.key\"\ncommand = \"stamp\"\n",
                stack.addr
            ),
        )?;
        runs.push(once(&bin, conf.path(), &stack)?);
    }
    let ms = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let clicks: Vec<f64> = runs.iter().flat_map(|r| r.clicks.iter().copied()).collect();
    let rows = [
        (
            "ruroco-gui: window shown after start under Xvfb, ms".to_owned(),
            fmt(ms(|r| r.shown.as_secs_f64() * 1e3), 0),
            "≤ 1000",
        ),
        (
            "ruroco-gui: resident memory with the window shown, MiB".to_owned(),
            fmt(ms(|r| r.rss_kib as f64 / 1024.0), 0),
            "–",
        ),
        (
            format!("ruroco-gui: CPU time over {} s idle, ms", IDLE.as_secs()),
            fmt(ms(|r| r.idle.as_secs_f64() * 1e3), 0),
            "≤ 50",
        ),
        (
            format!(
                "ruroco-gui: CPU time over {} s with the cursor blinking in the filter, ms",
                IDLE.as_secs()
            ),
            fmt(ms(|r| r.focused.as_secs_f64() * 1e3), 0),
            "≤ 300 (3% of a core)",
        ),
        (
            format!(
                "ruroco-gui: click on Send to the command's first line, ms, p50 / max of {}",
                clicks.len()
            ),
            format!(
                "{} / {}",
                fmt(median(&clicks), 1),
                fmt(clicks.iter().copied().reduce(f64::max), 1)
            ),
            "–",
        ),
    ];
    for (figure, ours, goal) in rows {
        report.add(Row {
            figure,
            ours,
            floor: "–".into(),
            fwknop: "–".into(),
            goal: goal.into(),
        });
    }
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

/// `xdotool ARGS` on `display`.
fn xdotool(display: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .context("cannot run xdotool")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One run: a display of its own, the app on it, sending to `stack`.
fn once(bin: &Path, conf: &Path, stack: &crate::stack::Stack) -> anyhow::Result<Run> {
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
    let (shown, window) = loop {
        let found = xdotool(&display, &["search", "--onlyvisible", "--name", "^ruroco$"])?;
        if let Some(window) = found.lines().next() {
            break (started.elapsed(), window.to_owned());
        }
        if Instant::now() > deadline {
            bail!("no ruroco window within 20 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(SETTLE);
    let rss_kib = crate::procfs::rss_kib(pid)?;
    let cpu = || crate::procfs::cpu_time(pid);
    let before = cpu()?;
    std::thread::sleep(IDLE);
    let idle = cpu()?.saturating_sub(before);
    // The keyboard to the window (a click on an empty part), the filter focused.
    xdotool(&display, &["windowfocus", "--sync", &window])?;
    xdotool(
        &display,
        &["mousemove", "--window", &window, "450", "400", "click", "1"],
    )?;
    xdotool(&display, &["key", "ctrl+f"])?;
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu()?;
    std::thread::sleep(IDLE);
    let focused = cpu()?.saturating_sub(before);
    xdotool(&display, &["key", "Escape"])?;
    // The first row's Send button, at its left end whatever the name's length.
    let mut clicks = Vec::new();
    for _ in 0..CLICKS {
        let ran = stack.stamps().len();
        let clicked = crate::stack::now_ns();
        xdotool(
            &display,
            &["mousemove", "--window", &window, "16", "100", "click", "1"],
        )?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let stamp = loop {
            if let Some(stamp) = stack.stamps().get(ran).copied() {
                break stamp;
            }
            if Instant::now() > deadline {
                bail!("a click on Send ran nothing within 5 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        clicks.push(stamp.saturating_sub(clicked) as f64 / 1e6);
        // Past the window's double-click guard (600 ms).
        std::thread::sleep(Duration::from_millis(800));
    }
    Ok(Run {
        shown,
        rss_kib,
        idle,
        focused,
        clicks,
    })
}
