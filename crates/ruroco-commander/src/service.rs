//! The commander's event loop: one thread that accepts messages, admits them (policy),
//! starts and supervises commands, undos and hooks, and schedules undos.
//!
//! It sleeps in one `poll` on the listener, a signal pipe (SIGCHLD, SIGTERM, SIGINT, SIGHUP) and
//! the running jobs' output pipes, with a timeout at the nearest deadline (job timeout or
//! undo due) and never more than [`MAX_SLEEP`].

use std::collections::VecDeque;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::clock::{now_mono_ms, now_unix_ms, utc};
use crate::commands::{CommandSpec, Commands};
use ruroco_config::ServiceManager;
use ruroco_metrics::MetricsFile;

use crate::hooks::Event;
use crate::intake::Intake;
use crate::metrics::CommanderMetrics;
use crate::policy::Gate;
use crate::runner::{Runner, Spawn};
use crate::setup::Origin;
use crate::socket::CommanderSocket;
use crate::undo::{PendingUndo, Schedule, Ticket};
use crate::undo_store::UndoStore;
use crate::warm::{WarmPool, MAX_WARM};

/// Commands and undos running at once.
pub(crate) const MAX_RUNNING: usize = 16;
/// Commands and undos running or waiting for a slot; beyond this a request is refused.
const MAX_IN_FLIGHT: usize = 256;
/// Longest sleep, so the stop flag is seen even if a signal's wake-up were lost.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long the loop must have had nothing to do before it starts the warm shells of the
/// commands it just ran. Started at once, a new shell took the CPU the command's own
/// shell had just been woken on: 0.8 to 1.8 ms of that command's latency (seen with
/// `perf record -e sched:sched_wakeup,sched:sched_switch`).
const REFILL_WHEN_QUIET: Duration = Duration::from_millis(5);
/// How often passed cooldown windows are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What a running job is.
#[derive(Debug)]
pub(crate) enum Tag {
    Command { spec: Arc<CommandSpec>, ip: IpAddr },
    Undo(Ticket),
    Hook { event: Event, command: String },
}

/// Waiting for a slot.
#[derive(Debug)]
pub(crate) enum Queued {
    Command { spec: Arc<CommandSpec>, ip: IpAddr },
    Undo(Ticket),
}

impl Queued {
    /// The (command, IP) it acts on.
    fn subject(&self) -> (&str, IpAddr) {
        match self {
            Queued::Command { spec, ip } => (&spec.name, *ip),
            Queued::Undo(ticket) => (&ticket.undo.command, ticket.undo.ip),
        }
    }
}

impl Tag {
    /// The (command, IP) a command or undo acts on; `None` for a hook.
    fn subject(&self) -> Option<(&str, IpAddr)> {
        match self {
            Tag::Command { spec, ip } => Some((&spec.name, *ip)),
            Tag::Undo(ticket) => Some((&ticket.undo.command, ticket.undo.ip)),
            Tag::Hook { .. } => None,
        }
    }
}

/// Everything the loop owns.
pub(crate) struct Service {
    pub(crate) socket: Option<CommanderSocket>,
    pub(crate) commands: Commands,
    /// Why the commands file is refused, while it is: no command runs, undos do.
    pub(crate) commands_refused: Option<String>,
    /// Where the commands come from, for messages.
    pub(crate) commands_source: std::path::PathBuf,
    pub(crate) allow_non_routable: bool,
    pub(crate) gate: Gate,
    pub(crate) undos: Schedule,
    pub(crate) store: UndoStore,
    pub(crate) runner: Runner<Tag>,
    pub(crate) queue: VecDeque<Queued>,
    /// Connections whose message is still arriving.
    pub(crate) intake: Intake,
    pub(crate) wake: UnixStream,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) reload: Arc<AtomicBool>,
    pub(crate) pruned: Instant,
    /// Warm shells of recently run commands, and commands whose shell to refill.
    pub(crate) warm: WarmPool,
    pub(crate) refill: Vec<Arc<CommandSpec>>,
    /// When the loop last had something to do (see [`REFILL_WHEN_QUIET`]).
    pub(crate) busy_at: Instant,
    pub(crate) origin: Origin,
    pub(crate) metrics: CommanderMetrics,
    pub(crate) metrics_file: Option<MetricsFile>,
    /// systemd's notify protocol (nothing without `NOTIFY_SOCKET`).
    pub(crate) service: ServiceManager,
}

/// What one `poll` found ready.
struct Ready {
    /// The signal pipe (SIGCHLD, SIGTERM, SIGINT, SIGHUP).
    wake: bool,
    listener: bool,
    /// Connections with (part of) a message or at their end.
    incoming: Vec<RawFd>,
    /// Output pipes with data or at their end.
    pipes: Vec<RawFd>,
    /// Timed out (or interrupted) with nothing ready.
    nothing: bool,
}

/// Everything [`Service::new`] takes over.
pub(crate) struct Parts {
    pub(crate) socket: CommanderSocket,
    pub(crate) commands: Commands,
    pub(crate) commands_refused: Option<String>,
    pub(crate) commands_source: std::path::PathBuf,
    pub(crate) allow_non_routable: bool,
    pub(crate) store: UndoStore,
    pub(crate) pending: Vec<PendingUndo>,
    pub(crate) origin: Origin,
    pub(crate) metrics_file: Option<MetricsFile>,
    pub(crate) start_time: f64,
}

impl Service {
    /// Sets up signals and the undo schedule (loaded from `store`).
    pub(crate) fn new(parts: Parts) -> anyhow::Result<Self> {
        let Parts {
            socket,
            commands,
            commands_refused,
            commands_source,
            allow_non_routable,
            store,
            pending,
            origin,
            metrics_file,
            start_time,
        } = parts;
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
            .context("cannot install signal handlers")?;
        let (wake, waker) = UnixStream::pair().context("cannot create the signal pipe")?;
        wake.set_nonblocking(true)?;
        waker.set_nonblocking(true)?;
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
        }
        for signal in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGCHLD,
            signal_hook::consts::SIGHUP,
        ] {
            let waker = waker.try_clone().context("cannot clone the signal pipe")?;
            signal_hook::low_level::pipe::register(signal, waker)
                .context("cannot install signal handlers")?;
        }
        let undos = Schedule::from_pending(pending);
        if commands.any_undo() || undos.len() > 0 {
            store.prepare(&undos)?;
        }
        let mut metrics = CommanderMetrics::new(start_time);
        metrics.commands_refused = commands_refused.is_some();
        Ok(Self {
            socket: Some(socket),
            commands,
            commands_refused,
            commands_source,
            allow_non_routable,
            gate: Gate::default(),
            undos,
            store,
            runner: Runner::default(),
            queue: VecDeque::new(),
            intake: Intake::default(),
            wake,
            stop,
            reload,
            pruned: Instant::now(),
            warm: WarmPool::default(),
            refill: Vec::new(),
            busy_at: Instant::now(),
            origin,
            metrics,
            metrics_file,
            service: ServiceManager::new(),
        })
    }

    /// Runs until SIGTERM/SIGINT, then lets running and queued commands finish (each is
    /// bounded by its timeout). Pending undos stay pending.
    pub(crate) fn run(&mut self) {
        if self.undos.len() > 0 {
            tracing::info!(
                "{} pending undo(s) from {}; overdue ones run now",
                self.undos.len(),
                self.store.path().display()
            );
        }
        // The socket is bound and the handlers installed: messages are taken now.
        self.service.ready(&self.status_line());
        self.prewarm();
        let mut status_at = Instant::now();
        loop {
            let now = Instant::now();
            self.service.watchdog(now);
            if now.saturating_duration_since(status_at) >= Duration::from_secs(10) {
                status_at = now;
                self.service.status(&self.status_line());
            }
            if self.stop.load(Ordering::SeqCst) {
                if self.socket.is_some() {
                    self.service.stopping();
                    // What already waits in the backlog was sent before the stop: take it
                    // in (and run it) rather than drop it with the listener.
                    while self.intake.has_room() && self.accept_backlog() {}
                }
                if let Some(socket) = self.socket.take() {
                    tracing::info!(
                        "shutdown requested: no new commands; waiting for {} running, {} queued; {} undo(s) stay pending",
                        self.runner.len(),
                        self.queue.len(),
                        self.undos.len()
                    );
                    socket.close();
                    self.queue.retain(|q| matches!(q, Queued::Command { .. }));
                }
                if self.runner.len() == 0 && self.queue.is_empty() && self.intake.is_empty() {
                    break;
                }
            } else {
                for ticket in self.undos.take_due(now_unix_ms()) {
                    self.queue.push_back(Queued::Undo(ticket));
                }
            }
            if self.reload.swap(false, Ordering::SeqCst) && self.socket.is_some() {
                self.service.reloading();
                self.reload();
                self.service.ready(&self.status_line());
            }
            self.start_queued();
            self.write_metrics(false);
            if self.pruned.elapsed() >= PRUNE_EVERY {
                self.gate.prune(now_mono_ms());
                self.pruned = Instant::now();
            }
            let ready = self.wait();
            if ready.wake {
                self.drain_wake();
            }
            // Connections are read (and past-deadline ones dropped) every round.
            self.read_incoming(&ready.incoming);
            if ready.listener {
                self.accept();
            }
            // Children are reaped after a SIGCHLD (or a quiet timeout, as a safety net);
            // pipes are read only when poll says they have something.
            let reap = ready.wake || ready.nothing;
            for done in self.runner.service(Instant::now(), &ready.pipes, reap) {
                self.finished(done);
            }
            if !ready.nothing {
                self.busy_at = Instant::now();
            }
            // Off the path of the commands just started: shells for their next run, once
            // nothing has happened for a while (a burst is served by cold starts).
            if self.busy_at.elapsed() >= REFILL_WHEN_QUIET {
                for spec in std::mem::take(&mut self.refill) {
                    if self.socket.is_some() {
                        self.warm.refill(&spec.name, &spec.cmd);
                    }
                }
            }
        }
        self.warm.clear();
        self.write_metrics(true);
        tracing::info!("ruroco-commander stopped");
    }

    /// What `systemctl status` shows.
    fn status_line(&self) -> String {
        format!(
            "{} command(s); {} running, {} queued; {} undo(s) pending",
            self.commands.len(),
            self.runner.len(),
            self.queue.len(),
            self.undos.len()
        )
    }

    /// Sleeps until something happens or the nearest deadline; says what is ready.
    fn wait(&mut self) -> Ready {
        let now = Instant::now();
        let mut sleep = MAX_SLEEP;
        for at in [self.runner.next_wakeup(), self.intake.next_deadline()]
            .into_iter()
            .flatten()
        {
            sleep = sleep.min(at.saturating_duration_since(now));
        }
        if !self.refill.is_empty() {
            // Plus a millisecond: poll counts whole ones, and waking just short of the
            // mark would spin.
            let left = REFILL_WHEN_QUIET.saturating_sub(self.busy_at.elapsed());
            sleep = sleep.min(left + Duration::from_millis(1));
        }
        if self.socket.is_some() {
            if let Some(due) = self.undos.next_due() {
                sleep = sleep.min(Duration::from_millis(due.saturating_sub(now_unix_ms())));
            }
        }
        let timeout = PollTimeout::try_from(sleep).unwrap_or(PollTimeout::MAX);
        let pipes = self.runner.fds();
        let incoming = self.intake.fds();
        let listen = self.socket.as_ref().filter(|_| self.intake.has_room());
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(pipes.len() + incoming.len() + 2);
        fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        if let Some(socket) = listen {
            fds.push(PollFd::new(socket.listener.as_fd(), PollFlags::POLLIN));
        }
        let first_incoming = fds.len();
        let first_pipe = first_incoming + incoming.len();
        fds.extend(
            incoming
                .into_iter()
                .chain(pipes)
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
        );
        // EINTR and timeouts just lead back to the checks.
        let n = poll(&mut fds, timeout).unwrap_or(0);
        let is_ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let ready_in = |from: usize, to: usize| -> Vec<RawFd> {
            fds.iter()
                .enumerate()
                .filter(|(i, fd)| (from..to).contains(i) && is_ready(fd))
                .map(|(_, fd)| fd.as_fd().as_raw_fd())
                .collect()
        };
        Ready {
            wake: fds.first().is_some_and(is_ready),
            listener: listen.is_some() && fds.get(1).is_some_and(is_ready),
            incoming: ready_in(first_incoming, first_pipe),
            pipes: ready_in(first_pipe, fds.len()),
            nothing: n <= 0,
        }
    }

    /// Why a pending undo's stored line must not run: it is not the undo line that
    /// `commands.toml` holds now for its command. `None` when they agree, and while the
    /// commands file is refused (the stored line then comes from root's own state file,
    /// which is checked like it, and a port opened before must still be closed).
    fn undo_line_problem(&self, undo: &PendingUndo) -> Option<String> {
        if self.commands_refused.is_some() {
            return None;
        }
        let now = self
            .commands
            .get(ruroco_ipc::command_hash(&undo.command))
            .and_then(|spec| spec.undo.as_ref().map(|u| u.cmd.as_str()));
        match now {
            Some(line) if line == undo.undo => None,
            Some(line) => Some(format!(
                "its stored line differs from the undo of `{}` in {} now ({line:?})",
                undo.command,
                self.commands_source.display()
            )),
            None => Some(format!(
                "`{}` has no undo in {} now",
                undo.command,
                self.commands_source.display()
            )),
        }
    }

    /// Asks for warm shells for the first [`MAX_WARM`] commands by name, so that even a
    /// command's first knock starts with one write; they are started once the loop is
    /// quiet, like any refill.
    pub(crate) fn prewarm(&mut self) {
        self.refill.extend(self.commands.first_by_name(MAX_WARM));
    }

    fn drain_wake(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Whether a run of `spec` for `ip` may be taken: fewer than [`MAX_IN_FLIGHT`]
    /// commands and undos running or waiting, and room for its undo if it has one.
    pub(crate) fn has_room_for(&self, spec: &CommandSpec, ip: IpAddr) -> bool {
        self.in_flight() < MAX_IN_FLIGHT
            && (spec.undo.is_none() || self.undos.has_room_for(&spec.name, ip))
    }

    /// Queues an admitted run and starts what may start.
    pub(crate) fn enqueue(&mut self, spec: Arc<CommandSpec>, ip: IpAddr) {
        self.queue.push_back(Queued::Command { spec, ip });
        self.start_queued();
    }

    /// Commands and undos running or waiting for a slot.
    fn in_flight(&self) -> usize {
        self.queue.len() + self.runner.count(|t| !matches!(t, Tag::Hook { .. }))
    }

    /// Starts queued commands and undos while there are free slots, in order, except that
    /// what acts on state an undo must take back runs one at a time per (command, IP):
    /// a command and the undo of the same (command, IP) never run at once (else a
    /// re-knock as its undo comes due could run `add` before `delete`), and neither do
    /// two runs of a command that has an undo (a check-then-act line such as
    /// `iptables -C … || iptables -I …`, run twice at once, inserts two rules where the
    /// one pending undo removes one). Runs of a command without an undo do not wait for
    /// each other: a burst of knocks runs side by side, as it would from different
    /// addresses.
    pub(crate) fn start_queued(&mut self) {
        while self.runner.count(|t| !matches!(t, Tag::Hook { .. })) < MAX_RUNNING {
            let runner = &self.runner;
            let free = |q: &Queued| {
                let (name, ip) = q.subject();
                let exclusive = match q {
                    Queued::Undo(_) => true,
                    Queued::Command { spec, .. } => spec.undo.is_some(),
                };
                let blocks = |t: &Tag| {
                    t.subject() == Some((name, ip)) && (exclusive || matches!(t, Tag::Undo(_)))
                };
                runner.count(blocks) == 0
            };
            let Some(next) = self
                .queue
                .iter()
                .position(free)
                .and_then(|i| self.queue.remove(i))
            else {
                return;
            };
            let job = match next {
                Queued::Command { spec, ip } => {
                    // A warm shell if there is one: the command starts with one write.
                    if let Some(shell) = self.warm.take(&spec.name, &spec.cmd) {
                        if let Ok(child) = shell.activate(ip) {
                            self.runner.adopt(
                                child,
                                Tag::Command {
                                    spec: Arc::clone(&spec),
                                    ip,
                                },
                                spec.timeout,
                            );
                            tracing::info!("running command {} for {ip}", spec.name);
                            self.refill.push(spec);
                            continue;
                        }
                    }
                    self.refill.push(Arc::clone(&spec));
                    Spawn {
                        line: spec.cmd.clone(),
                        env: vec![("RUROCO_IP", ip.to_string())],
                        timeout: spec.timeout,
                        tag: Tag::Command { spec, ip },
                    }
                }
                Queued::Undo(ticket) => {
                    let u = &ticket.undo;
                    if !self.undos.is_current(&ticket) {
                        // A run of the same command for the same IP succeeded while this
                        // undo waited for it, and moved the deadline: undoing now would
                        // take away what that run just gave.
                        tracing::info!(
                            "undo of {} for {} not run now: a new run moved it to {}",
                            u.command,
                            u.ip,
                            self.undos
                                .due(&u.command, u.ip)
                                .map_or_else(|| "never".to_owned(), utc)
                        );
                        continue;
                    }
                    if let Some(problem) = self.undo_line_problem(u) {
                        tracing::error!(
                            kind = "undo", command = %u.command, client_ip = %u.ip, outcome = "refused",
                            "undo of {} for {} NOT run: {problem}; it is dropped from {}: check what it would have undone and undo that by hand (stored line: {:?})",
                            u.command,
                            u.ip,
                            self.store.path().display(),
                            u.undo
                        );
                        self.metrics.undo("refused");
                        if self.undos.finished(&ticket) {
                            self.save_undos();
                        }
                        continue;
                    }
                    tracing::info!(
                        "running undo of {} for {} (due {})",
                        u.command,
                        u.ip,
                        utc(u.due_unix_ms)
                    );
                    Spawn {
                        line: u.undo.clone(),
                        env: vec![("RUROCO_IP", u.ip.to_string())],
                        timeout: Duration::from_secs(u.timeout_sec.max(1)),
                        tag: Tag::Undo(ticket),
                    }
                }
            };
            // Logged after the spawn, so the line costs the command no latency.
            let started = match &job.tag {
                Tag::Command { spec, ip } => Some((Arc::clone(spec), *ip)),
                _ => None,
            };
            match self.runner.start(job) {
                Ok(()) => {
                    if let Some((spec, ip)) = started {
                        tracing::info!("running command {} for {ip}", spec.name);
                    }
                }
                Err(done) => self.finished(done),
            }
        }
    }
}
