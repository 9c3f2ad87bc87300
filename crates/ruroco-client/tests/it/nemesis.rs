//! Failover safety searched for, not scripted: in a network namespace of its own, the
//! guide's Sentinel layout (a primary, two replicas, three sentinels, each process on a
//! loopback address of its own so `nft` can cut any pair) and three servers sharing
//! floors through it. Round after round a seeded nemesis cuts pairs, pauses, kills and
//! restarts processes while knocks go to random servers; after each round every datagram
//! sent so far is replayed to every server, and no knock may have run twice.
//!
//! Each knock claims an address of its own (a permissive datagram), so the command's
//! output names the datagram that ran. `RURUCO_NEMESIS_SEED` reruns a seed (printed at
//! the start and on failure), `RURUCO_NEMESIS_ROUNDS` sets the number of rounds (by default one per kind of
//! fault, each kind once in a random order), `RURUCO_NEMESIS_FAULTS` (`5,6`) the kinds
//! of fault, in order.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::compat::{key_string, now_nanos, v0_datagram_for};
use crate::redis_ha::{password_file, redis_at, signal};
use crate::util::{tool, Stack};

const INSIDE: &str = "RURUCO_NEMESIS_INSIDE";
const SEED: &str = "RURUCO_NEMESIS_SEED";
const ROUNDS: &str = "RURUCO_NEMESIS_ROUNDS";
const FAULTS: &str = "RURUCO_NEMESIS_FAULTS";
const PASS: &str = "nemesis-pass";
const NODES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 1, 1),
    Ipv4Addr::new(127, 0, 1, 2),
    Ipv4Addr::new(127, 0, 1, 3),
];
const SENTINELS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 2, 1),
    Ipv4Addr::new(127, 0, 2, 2),
    Ipv4Addr::new(127, 0, 2, 3),
];
/// Where the servers' connections come from (the kernel's choice on loopback).
const SERVERS: Ipv4Addr = Ipv4Addr::LOCALHOST;
const REDIS_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
/// Between two knocks.
const PACE: Duration = Duration::from_millis(150);
/// A knock that has not run this long after it was sent was refused.
const SETTLE: Duration = Duration::from_secs(1);
/// Kinds of fault the nemesis knows (see [`World::fault`]).
const KINDS: usize = 7;

#[test]
fn a_random_nemesis_never_makes_a_knock_run_twice() {
    if std::env::var_os(INSIDE).is_some() {
        let seed = std::env::var(SEED).unwrap().parse().unwrap();
        let rounds = std::env::var(ROUNDS).map_or(KINDS, |r| r.parse().unwrap());
        World::start(seed).run(rounds);
        return;
    }
    let missing: Vec<&str> = ["unshare", "nft", "ip", "redis-server"]
        .into_iter()
        .filter(|t| tool(t).is_none())
        .collect();
    if !missing.is_empty() || !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with {missing:?} installed"
        );
        eprintln!("skipped: needs root and {missing:?}");
        return;
    }
    let seed: u64 = std::env::var(SEED).map_or_else(
        |_| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            now.as_secs() ^ u64::from(now.subsec_nanos())
        },
        |s| s.parse().unwrap(),
    );
    eprintln!("nemesis seed {seed} (rerun with {SEED}={seed})");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(tool("unshare").unwrap())
        .args(["--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "nemesis::a_random_nemesis_never_makes_a_knock_run_twice",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(INSIDE, "1")
        .env(SEED, seed.to_string())
        .stdout(out.as_file().try_clone().unwrap())
        .stderr(out.as_file().try_clone().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(out.path()).unwrap();
    let figures: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("nemesis") || std::env::var_os("RURUCO_NEMESIS_LOGS").is_some())
        .collect();
    eprintln!("{}", figures.join("\n"));
    assert!(status.success(), "seed {seed}: {status}\n{text}");
}

/// splitmix64: a seed gives the same rounds every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

/// A `redis-server` (node or sentinel) on its own address, from a config file it may
/// rewrite (as Sentinel does), so a restart comes back as production's would.
struct Proc {
    name: String,
    conf: PathBuf,
    sentinel: bool,
    child: Option<Child>,
    paused: bool,
    _dir: tempfile::TempDir,
}

impl Proc {
    fn new(name: String, text: impl FnOnce(&Path) -> String, sentinel: bool) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("redis.conf");
        std::fs::write(&conf, text(dir.path())).unwrap();
        let mut p = Proc {
            name,
            conf,
            sentinel,
            child: None,
            paused: false,
            _dir: dir,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(tool("redis-server").unwrap());
        cmd.arg(&self.conf);
        if self.sentinel {
            cmd.arg("--sentinel");
        }
        self.child = Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    fn pause(&mut self) {
        if self.child.is_some() && !self.paused {
            signal(self.pid(), Signal::SIGSTOP);
            self.paused = true;
        }
    }

    fn resume(&mut self) {
        if self.paused {
            signal(self.pid(), Signal::SIGCONT);
            self.paused = false;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One knock: the datagram, the address it claims, and where it went.
struct Knock {
    datagram: Vec<u8>,
    ip: Ipv4Addr,
    to: usize,
    at: Duration,
    /// Whether it ran within [`SETTLE`] of being sent (before any replay); `None`
    /// until looked at.
    served: Option<bool>,
}

struct World {
    rng: Rng,
    seed: u64,
    nodes: Vec<Proc>,
    sentinels: Vec<Proc>,
    stacks: Vec<Stack>,
    key: String,
    knocks: Vec<Knock>,
    events: Vec<String>,
    started: Instant,
    /// Per server, its cgroup (removed once the servers are gone: declared after `stacks`).
    cgroups: Cgroups,
    _secrets: tempfile::TempDir,
}

/// cgroups (v2) of the test's own, one per server, so that an `nft` rule can cut one
/// server from a party while the others still reach it (all servers connect from the
/// same loopback address).
struct Cgroups(Vec<(PathBuf, String)>);

impl Cgroups {
    /// Where cgroup v2 is mounted, and its path below `/sys/fs/cgroup` (where `nft`
    /// looks names up).
    fn root() -> (PathBuf, String) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let at = mounts
            .lines()
            .find_map(|l| {
                let mut f = l.split(' ');
                let (_, at, kind) = (f.next(), f.next()?, f.next()?);
                (kind == "cgroup2").then(|| PathBuf::from(at))
            })
            .expect("the nemesis needs cgroup v2 mounted");
        let below = at
            .strip_prefix("/sys/fs/cgroup")
            .expect("cgroup v2 under /sys/fs/cgroup")
            .to_string_lossy()
            .into_owned();
        (at, below)
    }

    /// A fresh cgroup holding `pid`, kept with its name for `nft`.
    fn hold(&mut self, tag: &str, pid: u32) {
        let (root, below) = Cgroups::root();
        let name = format!("ruroco-nemesis-{}-{tag}", std::process::id());
        let dir = root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        let nft = if below.is_empty() {
            name
        } else {
            format!("{}/{name}", below.trim_start_matches('/'))
        };
        self.0.push((dir, nft));
    }

    /// The `i`th cgroup's path as `nft` names it.
    fn nft_name(&self, i: usize) -> &str {
        &self.0[i].1
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for (dir, _) in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl World {
    fn start(seed: u64) -> World {
        sh("ip", &["link", "set", "lo", "up"]);
        sh("nft", &["add", "table", "inet", "nemesis"]);
        sh(
            "nft",
            &[
                "add chain inet nemesis out { type filter hook output priority 0 ; policy accept ; }",
            ],
        );
        let nodes: Vec<Proc> = NODES
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let of = if i == 0 {
                    String::new()
                } else {
                    format!("replicaof {} {REDIS_PORT}\n", NODES[0])
                };
                Proc::new(
                    format!("redis {ip}"),
                    |dir| {
                        format!(
                            "port {REDIS_PORT}\nbind {ip}\nbind-source-addr {ip}\nsave \"\"\nappendonly yes\ndir {0}\nlogfile {0}/log\nrequirepass {PASS}\nmasterauth {PASS}\n{of}",
                            dir.display()
                        )
                    },
                    false,
                )
            })
            .collect();
        let sentinels: Vec<Proc> = SENTINELS
            .iter()
            .map(|ip| {
                Proc::new(
                    format!("sentinel {ip}"),
                    |dir| {
                        format!(
                            "port {SENTINEL_PORT}\nbind {ip}\nbind-source-addr {ip}\ndir {}\nlogfile {}/log\nsentinel monitor floors {} {REDIS_PORT} 2\nsentinel auth-pass floors {PASS}\nsentinel down-after-milliseconds floors 1000\nsentinel failover-timeout floors 4000\nsentinel parallel-syncs floors 1\n",
                            dir.display(),
                            dir.display(),
                            NODES[0]
                        )
                    },
                    true,
                )
            })
            .collect();
        let secrets = tempfile::tempdir().unwrap();
        let pass = password_file(secrets.path(), PASS);
        let list: Vec<String> = SENTINELS
            .iter()
            .map(|s| format!("{s}:{SENTINEL_PORT}"))
            .collect();
        let extra = format!(
            "floor_store = \"redis-sentinel://{}/floors\"\nfloor_store_password_file = \"{}\"\nfloor_store_min_replicas = 1\nfloor_store_timeout_ms = 500\nmax_requests_per_second = 100000\nmax_requests_per_second_global = 100000\nmax_clock_skew_seconds = 1\n",
            list.join(","),
            pass.display()
        );
        let mut world = World {
            rng: Rng(seed),
            seed,
            nodes,
            sentinels,
            stacks: Vec::new(),
            key: String::new(),
            knocks: Vec::new(),
            events: Vec::new(),
            started: Instant::now(),
            cgroups: Cgroups(Vec::new()),
            _secrets: secrets,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !world.healthy() {
            assert!(
                Instant::now() < deadline,
                "the layout did not come up: {:?}",
                redis_at(
                    SocketAddr::from((SENTINELS[0], SENTINEL_PORT)),
                    None,
                    &["SENTINEL", "replicas", "floors"],
                )
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let first = Stack::start(&extra);
        world.key = key_string(&first);
        world.stacks.push(first);
        for _ in 0..2 {
            world.stacks.push(Stack::start_with_key(&extra, &world.key));
        }
        for s in 0..world.stacks.len() {
            let pid = world.stacks[s].server.pid().as_raw().unsigned_abs();
            world.cgroups.hold(&format!("server{s}"), pid);
        }
        // Each server knocks through once (its first epoch's fence is waited out here).
        for to in 0..world.stacks.len() {
            let ran = world.knock_until(Duration::from_secs(20), Some(to), |w| {
                !w.ran_on(to).is_empty()
            });
            assert!(
                ran,
                "server {to} never ran a knock\n{}",
                world.stacks[to].logs()
            );
        }
        world
    }

    fn log(&mut self, event: String) {
        let line = format!(
            "nemesis {:6.1}s {event}",
            self.started.elapsed().as_secs_f64()
        );
        eprintln!("{line}");
        self.events.push(line);
    }

    /// A fresh knock, claiming the next address, to a random server (or `to`).
    fn knock_to(&mut self, to: Option<usize>) {
        let n = u32::try_from(self.knocks.len()).unwrap() + 1;
        let ip = Ipv4Addr::from(0x0a00_0000 | n);
        let datagram = v0_datagram_for(&self.key, "default", now_nanos(), Some(ip));
        let to = to.unwrap_or_else(|| self.rng.below(self.stacks.len()));
        self.settle(false);
        self.stacks[to].send_datagram(&datagram);
        self.knocks.push(Knock {
            datagram,
            ip,
            to,
            at: self.started.elapsed(),
            served: None,
        });
    }

    /// Notes which knocks sent at least [`SETTLE`] ago have run (`all`: every knock, after
    /// waiting out the last one's).
    fn settle(&mut self, all: bool) {
        if all {
            std::thread::sleep(SETTLE);
        }
        let now = self.started.elapsed();
        if !self
            .knocks
            .iter()
            .any(|k| k.served.is_none() && (all || now - k.at >= SETTLE))
        {
            return;
        }
        let runs = self.runs();
        for k in &mut self.knocks {
            if k.served.is_none() && (all || now - k.at >= SETTLE) {
                k.served = Some(runs.contains_key(&k.ip.to_string()));
            }
        }
    }

    /// Knocks (to `to`, or to random servers) for `time`.
    fn knock_for(&mut self, time: Duration, to: Option<usize>) {
        let until = Instant::now() + time;
        while Instant::now() < until {
            self.knock_to(to);
            std::thread::sleep(PACE);
        }
    }

    /// Knocks (to `to`, or to random servers) until `done` (checked between knocks) or
    /// `limit`; whether it was done.
    fn knock_until(
        &mut self,
        limit: Duration,
        to: Option<usize>,
        mut done: impl FnMut(&World) -> bool,
    ) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            self.knock_to(to);
            std::thread::sleep(PACE);
            if done(self) {
                return true;
            }
        }
        false
    }

    /// The addresses the command ran for on server `i`.
    fn ran_on(&self, i: usize) -> Vec<String> {
        self.stacks[i].wait_runs("default", usize::MAX, Duration::ZERO)
    }

    /// How many times each claimed address ran, over all servers.
    fn runs(&self) -> HashMap<String, Vec<usize>> {
        let mut runs: HashMap<String, Vec<usize>> = HashMap::new();
        for i in 0..self.stacks.len() {
            for ip in self.ran_on(i) {
                runs.entry(ip).or_default().push(i);
            }
        }
        runs
    }

    /// The node the sentinels name as primary (the first that answers).
    fn primary(&self) -> Option<usize> {
        SENTINELS.iter().find_map(|s| {
            let reply = redis_at(
                SocketAddr::from((*s, SENTINEL_PORT)),
                None,
                &["SENTINEL", "get-master-addr-by-name", "floors"],
            );
            NODES
                .iter()
                .position(|n| reply.contains(&format!("\r\n{n}\r\n")))
        })
    }

    /// Every sentinel names one primary and knows both replicas as healthy, and the
    /// primary has both replicas online.
    fn healthy(&self) -> bool {
        let named: Vec<String> = SENTINELS
            .iter()
            .map(|s| {
                redis_at(
                    SocketAddr::from((*s, SENTINEL_PORT)),
                    None,
                    &["SENTINEL", "get-master-addr-by-name", "floors"],
                )
            })
            .collect();
        let Some(p) = self.primary() else {
            return false;
        };
        let wanted = format!("\r\n{}\r\n", NODES[p]);
        // Sentinels learn replicas from the primary's INFO, every ten seconds: one
        // that has not seen both yet cannot promote either.
        let replicas_known = SENTINELS.iter().all(|s| {
            redis_at(
                SocketAddr::from((*s, SENTINEL_PORT)),
                None,
                &["SENTINEL", "replicas", "floors"],
            )
            .matches("flags\r\n$5\r\nslave\r\n")
            .count()
                == 2
        });
        replicas_known
            && named.iter().all(|n| n.contains(&wanted))
            && redis_at(
                SocketAddr::from((NODES[p], REDIS_PORT)),
                Some(PASS),
                &["INFO", "replication"],
            )
            .matches("state=online")
            .count()
                == 2
    }

    fn cut(&mut self, a: Ipv4Addr, b: Ipv4Addr) {
        World::drop_between(a, b);
        self.log(format!("cut {a} <-> {b}"));
    }

    /// Packets between `a` and `b` dropped, both ways.
    fn drop_between(a: Ipv4Addr, b: Ipv4Addr) {
        for (from, to) in [(a, b), (b, a)] {
            sh(
                "nft",
                &[&format!(
                    "add rule inet nemesis out ip saddr {from} ip daddr {to} drop"
                )],
            );
        }
    }

    /// Server `s` cut from the process at `to` (its packets dropped, so no connection
    /// between them makes progress).
    fn cut_server(&mut self, s: usize, to: Ipv4Addr) {
        let group = self.cgroups.nft_name(s);
        sh(
            "nft",
            &[&format!(
                "add rule inet nemesis out socket cgroupv2 level 1 \"{group}\" ip daddr {to} drop"
            )],
        );
    }

    /// Every cut mended, every paused process resumed, every killed one restarted.
    fn heal(&mut self) {
        sh("nft", &["flush", "chain", "inet", "nemesis", "out"]);
        for p in self.nodes.iter_mut().chain(self.sentinels.iter_mut()) {
            p.resume();
            if p.child.is_none() {
                p.spawn();
            }
        }
        for s in &self.stacks {
            s.server.signal(Signal::SIGCONT);
        }
        self.log("healed".to_owned());
    }

    /// Any process or the servers, by address.
    fn party(&mut self) -> Ipv4Addr {
        let all: Vec<Ipv4Addr> = NODES
            .iter()
            .chain(SENTINELS.iter())
            .copied()
            .chain([SERVERS])
            .collect();
        all[self.rng.below(all.len())]
    }

    fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
        let name = self.nodes[i].name.clone();
        self.log(format!("kill -9 {name}"));
    }

    fn pause_node(&mut self, i: usize) {
        self.nodes[i].pause();
        let name = self.nodes[i].name.clone();
        self.log(format!("SIGSTOP {name}"));
    }

    /// One round of faults, with knocks all along.
    /// One fault of `kind` (`0..KINDS`), its parties chosen at random.
    fn fault(&mut self, kind: usize) {
        let primary = self.primary().unwrap_or(0);
        let replicas: Vec<usize> = (0..3).filter(|&i| i != primary).collect();
        match kind {
            // A cut between any two parties.
            0 => {
                let a = self.party();
                let mut b = self.party();
                while b == a {
                    b = self.party();
                }
                self.cut(a, b);
                self.knock_for(Duration::from_secs(4), None);
            }
            // Any process paused.
            1 => {
                let i = self.rng.below(7);
                if i < 3 {
                    self.pause_node(i);
                } else if i < 6 {
                    self.sentinels[i - 3].pause();
                    let name = self.sentinels[i - 3].name.clone();
                    self.log(format!("SIGSTOP {name}"));
                } else {
                    let s = self.rng.below(self.stacks.len());
                    self.stacks[s].server.signal(Signal::SIGSTOP);
                    self.log(format!("SIGSTOP ruroco-server {s}"));
                }
                self.knock_for(Duration::from_secs(4), None);
            }
            // A node killed: the primary half the time.
            2 => {
                let i = if self.rng.below(2) == 0 {
                    primary
                } else {
                    self.rng.below(3)
                };
                self.kill_node(i);
                if i == primary {
                    // Knocks go on until one runs: the refusal window of a failover.
                    let killed = self.knocks.len();
                    let at = self.started.elapsed();
                    let served = self.knock_until(Duration::from_secs(30), None, |w| {
                        let runs = w.runs();
                        w.knocks[killed..]
                            .iter()
                            .any(|k| runs.contains_key(&k.ip.to_string()))
                    });
                    let runs = self.runs();
                    let first = self.knocks[killed..]
                        .iter()
                        .find(|k| runs.contains_key(&k.ip.to_string()))
                        .map(|k| k.at - at);
                    self.log(format!(
                        "failover: served again {served}, the first knock that ran was sent {:.1} s after the kill",
                        first.unwrap_or_default().as_secs_f64()
                    ));
                }
                self.knock_for(Duration::from_secs(2), None);
            }
            // The primary killed and back before the sentinels notice, empty of what
            // it had not yet written to its append-only file.
            3 => {
                self.knock_for(Duration::from_millis(500), None);
                self.kill_node(primary);
                self.nodes[primary].spawn();
                self.log(format!("restart {}", self.nodes[primary].name));
                self.knock_for(Duration::from_secs(3), None);
            }
            // The primary cut from the sentinels and the servers keep writing to it.
            4 => {
                for s in SENTINELS {
                    sh(
                        "nft",
                        &[&format!(
                            "add rule inet nemesis out ip saddr {s} ip daddr {} drop",
                            NODES[primary]
                        )],
                    );
                }
                self.log(format!("sentinels cut from {}", NODES[primary]));
                self.knock_for(Duration::from_secs(6), None);
            }
            // Split brain: the primary, replica y and server h on one side; the
            // sentinels, replica x and the other servers on the other. The sentinels
            // promote x while h goes on writing to the old primary, acknowledged by y;
            // healed, both resync from x.
            5 => {
                let pick = self.rng.below(2);
                let (x, y) = (replicas[pick], replicas[1 - pick]);
                let h = self.rng.below(self.stacks.len());
                for old in [primary, y] {
                    for other in SENTINELS.iter().chain([&NODES[x]]) {
                        World::drop_between(NODES[old], *other);
                    }
                }
                for s in 0..self.stacks.len() {
                    let away: Vec<Ipv4Addr> = if s == h {
                        SENTINELS.iter().chain([&NODES[x]]).copied().collect()
                    } else {
                        vec![NODES[primary], NODES[y]]
                    };
                    for to in away {
                        self.cut_server(s, to);
                    }
                }
                self.log(format!(
                    "split: {} {} and server {h} | sentinels, {} and the other servers",
                    NODES[primary], NODES[y], NODES[x]
                ));
                self.knock_for(Duration::from_secs(7), None);
                // The newest knocks on h's side: the others' own floors are older.
                self.knock_for(Duration::from_millis(1500), Some(h));
            }
            // The failover that loses an acknowledged floor: replica x cut from the
            // primary, knocks acknowledged by y alone, y paused, the primary killed;
            // the sentinels can only promote x, and y resyncs from it.
            _ => {
                let pick = self.rng.below(2);
                let (x, y) = (replicas[pick], replicas[1 - pick]);
                self.cut(NODES[x], NODES[primary]);
                self.knock_for(Duration::from_millis(1500), None);
                self.pause_node(y);
                self.kill_node(primary);
                sh("nft", &["flush", "chain", "inet", "nemesis", "out"]);
                // No knock while the sentinels decide: a knock refused meanwhile is kept
                // and written ahead of the next one, raising the new primary's floor past
                // what it lost before the replay could show it.
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut promoted = false;
                while !promoted && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    promoted = self.primary() == Some(x);
                }
                self.log(format!("{} promoted: {promoted}", NODES[x]));
            }
        }
    }

    fn run(mut self, rounds: usize) {
        eprintln!("nemesis seed {}: {rounds} rounds", self.seed);
        // Every kind of fault once in a random order (then again), so that a short run
        // still covers them all.
        let mut kinds: Vec<usize> = (0..KINDS).collect();
        for i in (1..kinds.len()).rev() {
            let j = self.rng.below(i + 1);
            kinds.swap(i, j);
        }
        if let Ok(only) = std::env::var(FAULTS) {
            kinds = only.split(',').map(|k| k.parse().unwrap()).collect();
        }
        for round in 1..=rounds {
            let first = self.knocks.len();
            self.log(format!("round {round}"));
            if self.rng.below(3) == 0 {
                let s = self.rng.below(self.stacks.len());
                self.stacks[s].server.signal(Signal::SIGSTOP);
                self.log(format!("SIGSTOP ruroco-server {s}"));
            }
            self.fault(kinds[(round - 1) % kinds.len()]);
            self.heal();
            // Replayed as soon as the store is whole again, before any new knock could
            // raise the floors past what a failover lost.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.healthy() {
                assert!(
                    Instant::now() < deadline,
                    "seed {}: the layout did not recover\n{}",
                    self.seed,
                    self.events.join("\n")
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            self.log("healthy".to_owned());
            self.replay_and_check();
            // The fence of a new epoch, and every server back in service.
            std::thread::sleep(Duration::from_millis(1100));
            for to in 0..self.stacks.len() {
                let ran = self.knock_until(Duration::from_secs(30), Some(to), |w| {
                    let last = w.knocks.last().unwrap();
                    w.ran_on(to).contains(&last.ip.to_string())
                });
                assert!(
                    ran,
                    "seed {}: server {to} runs no knock after healing\n{}\n{}",
                    self.seed,
                    self.events.join("\n"),
                    self.stacks[to].logs()
                );
            }
            self.replay_and_check();
            self.figures(round, first);
        }
        if std::env::var_os("RURUCO_NEMESIS_LOGS").is_some() {
            for s in &self.stacks {
                eprintln!("{}", s.logs());
            }
            for p in self.nodes.iter().chain(&self.sentinels) {
                let log = p.conf.with_file_name("log");
                eprintln!(
                    "--- {}\n{}",
                    p.name,
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
        let runs = self.runs();
        eprintln!(
            "nemesis seed {}: {} knocks, {} ran once, none twice",
            self.seed,
            self.knocks.len(),
            runs.len()
        );
    }

    /// Every datagram sent so far to every server; then no address may have run twice.
    fn replay_and_check(&mut self) {
        self.settle(true);
        for k in &self.knocks {
            for s in &self.stacks {
                s.send_datagram(&k.datagram);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_secs(2));
        let twice: Vec<String> = self
            .runs()
            .into_iter()
            .filter(|(_, on)| on.len() > 1)
            .map(|(ip, on)| {
                let k = self.knocks.iter().find(|k| k.ip.to_string() == ip).unwrap();
                format!(
                    "{ip} (sent at {:.1}s to server {}) ran on servers {on:?}",
                    k.at.as_secs_f64(),
                    k.to
                )
            })
            .collect();
        if !twice.is_empty() {
            let logs: Vec<String> = self.stacks.iter().map(Stack::logs).collect();
            panic!(
                "seed {}: knocks ran twice:\n{}\nevents:\n{}\n{}",
                self.seed,
                twice.join("\n"),
                self.events.join("\n"),
                logs.join("\n")
            );
        }
        self.log(format!(
            "replayed {} datagrams to every server",
            self.knocks.len()
        ));
    }

    /// Knocks of the round that ran when sent, and its longest stretch of refusals: from
    /// the first knock refused to the next one served.
    fn figures(&self, round: usize, first: usize) {
        let mine = &self.knocks[first..];
        let served = |k: &Knock| k.served == Some(true);
        let mut longest = Duration::ZERO;
        let mut since: Option<Duration> = None;
        let mut last: Option<Duration> = None;
        for k in mine {
            // A pause in the knocking (the test waiting for the store) ends a stretch at
            // its last refused knock: no knock was refused in the pause.
            if let (Some(s), Some(l)) = (since, last) {
                if k.at - l > SETTLE {
                    longest = longest.max(l - s);
                    since = None;
                }
            }
            match (served(k), since) {
                (false, None) => since = Some(k.at),
                (true, Some(s)) => {
                    longest = longest.max(k.at - s);
                    since = None;
                }
                _ => {}
            }
            last = Some(k.at);
        }
        eprintln!(
            "nemesis round {round}: {} of {} knocks ran when sent, longest refusal {:.1} s",
            mine.iter().filter(|k| served(k)).count(),
            mine.len(),
            longest.as_secs_f64()
        );
    }
}
