//! Unit tests of the parent module.

use super::*;

/// Runs one line to completion, polling like the event loop does.
fn run(line: &str, secs: u64) -> Done<()> {
    let mut runner = Runner::default();
    runner
        .start(Spawn {
            tag: (),
            line: line.into(),
            env: vec![("RUROCO_IP", "192.0.2.1".into())],
            timeout: Duration::from_secs(secs),
        })
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(done) = runner.service(Instant::now(), &[], true).pop() {
            return done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn captures_output_and_status() {
    let done = run("echo \"$RUROCO_IP\"; echo oops >&2; exit 3", 5);
    assert_eq!(done.outcome.code(), Some(3));
    assert_eq!(done.stdout, "192.0.2.1");
    assert_eq!(done.stderr, "oops");
}

#[test]
fn output_is_bounded() {
    let done = run("head -c 100000 /dev/zero | tr '\\0' a", 5);
    let out = done.stdout;
    assert!(out.len() < OUTPUT_LIMIT + 64);
    assert!(
        out.ends_with(&format!("[... {} more bytes]", 100_000 - OUTPUT_LIMIT)),
        "{}",
        &out[out.len() - 40..]
    );
}

#[test]
fn a_process_escaping_the_group_cannot_hang_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("escaped.pid");
    let cmd = format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 30' & sleep 0.2; echo started",
        pid_file.display()
    );
    let started = Instant::now();
    let done = run(&cmd, 1);
    let elapsed = started.elapsed();
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid = nix::unistd::Pid::from_raw(pid.trim().parse().unwrap());
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(done.outcome.success(), "{:?}", done.outcome);
    assert_eq!(done.stdout, "started", "partial output is kept");
}

#[test]
fn timeout_kills_the_group() {
    let started = Instant::now();
    let done = run("sleep 100 & sleep 100", 1);
    assert!(matches!(done.outcome, Outcome::TimedOut));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn spawn_failure_is_reported() {
    let mut runner: Runner<u8> = Runner::default();
    let done = runner
        .start(Spawn {
            tag: 7,
            line: "true".into(),
            env: vec![("BAD\0NAME", String::new())],
            timeout: Duration::from_secs(1),
        })
        .unwrap_err();
    assert_eq!(done.tag, 7);
    assert!(matches!(done.outcome, Outcome::SpawnFailed(_)));
    assert_eq!(runner.len(), 0);
}
