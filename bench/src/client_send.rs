//! `client send` wall time: one process start, key read, counter update, seal and send,
//! timed by hyperfine for ruroco's client (as packaged and as `cargo install` builds it),
//! fwknop's client when installed, and `/bin/true` (the cost of starting any process here);
//! then `--version` of both, start-up alone.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

use ruroco_testkit::find_tool as tool;

use crate::binaries::{run, Binaries};
use crate::report::{fmt, Report, Row};
use crate::stats::median;

/// hyperfine runs per repetition; the figure is the median over `repeat` repetitions of
/// hyperfine's median.
const RUNS: &str = "200";

/// Measures and adds the row.
pub(crate) fn measure(bins: &Binaries, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    let Some(hyperfine) = tool("hyperfine") else {
        eprintln!("client send: skipped, hyperfine is not installed (apt install hyperfine)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    // The datagrams go to a bound loopback socket nobody reads: both clients pay the same
    // kernel path, and nothing runs.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let target = sink.local_addr()?;
    let key = dir.path().join("bench.key");
    let key_string = run(Command::new(&bins.client).arg("gen"))?;
    std::fs::write(&key, key_string)?;
    // Private, as the guide says (a readable key costs a warning on every send).
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let send =
        |client: &Path| format!("{} send -a {target} -k {}", client.display(), key.display());
    let mut commands = vec![send(&bins.client)];
    let fwknop = tool("fwknop").map(|fwknop| {
        // fwknop wants its rc file private; random keys in the same encoding it uses.
        let rc = dir.path().join("fwknoprc");
        format!(
            "{} -A tcp/22 -a 127.0.0.1 -D {} -p {} --key-base64-rijndael {} \
             --key-base64-hmac {} --use-hmac --rc-file {} --no-save-args",
            fwknop.display(),
            target.ip(),
            target.port(),
            "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
            "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
            rc.display()
        )
    });
    if let Some(f) = &fwknop {
        let rc = dir.path().join("fwknoprc");
        std::fs::write(&rc, "")?;
        std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        commands.push(f.clone());
    }
    commands.push("/bin/true".to_owned());
    // Start-up alone: `--version`, the least any invocation does.
    let version_at = commands.len();
    commands.push(format!("{} --version", bins.client.display()));
    if let Some(f) = tool("fwknop") {
        commands.push(format!("{} --version", f.display()));
    }

    let mut medians = vec![Vec::new(); commands.len()];
    for _ in 0..repeat {
        let json = dir.path().join("hyperfine.json");
        run(Command::new(&hyperfine)
            .env("RUROCO_CONF_DIR", dir.path())
            // `fwknop --version` creates ~/.fwknoprc: let it, in the scratch directory.
            .env("HOME", dir.path())
            .args(["-N", "--warmup", "20", "--runs", RUNS, "--style", "none"])
            .arg("--export-json")
            .arg(&json)
            .args(&commands))?;
        let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
        let results = parsed
            .get("results")
            .and_then(|r| r.as_array())
            .context("hyperfine's JSON has no results")?;
        for (i, r) in results.iter().enumerate() {
            let seconds = r["median"]
                .as_f64()
                .context("hyperfine result has no median")?;
            if let Some(m) = medians.get_mut(i) {
                m.push(seconds * 1e3);
            }
        }
    }
    let ms = |i: usize| medians.get(i).and_then(|m| median(m));
    let fwknop_ms = fwknop.as_ref().and_then(|_| ms(1));
    let true_ms = ms(version_at - 1);
    report.add(Row {
        figure: "client send wall time, ms (packaged build)".into(),
        ours: fmt(ms(0), 3),
        floor: format!("{} (/bin/true)", fmt(true_ms, 3)),
        fwknop: fmt(fwknop_ms, 3),
        goal: "≤ fwknop".into(),
    });
    report.add(Row {
        figure: "client --version wall time, ms (start-up alone)".into(),
        ours: fmt(ms(version_at), 3),
        floor: format!("{} (/bin/true)", fmt(true_ms, 3)),
        fwknop: fmt(fwknop.as_ref().and_then(|_| ms(version_at + 1)), 3),
        goal: "≤ fwknop".into(),
    });
    Ok(())
}
