//! With Sentinel, a batch runs only if, during its call, a majority of the sentinels
//! names the primary the call wrote to.
//!
//! Sentinel promotes a replica by a majority of sentinels, not of data: an old primary
//! cut off from the sentinels but not from one replica and one server goes on
//! acknowledging writes (`WAIT` included) after its successor took over, and those floors
//! vanish when it is made a replica again. Asking every sentinel in each call closes
//! that: a sentinel names one primary at a time and switches once per promotion, and any
//! two majorities share a sentinel, so a call confirmed for the old primary got that
//! sentinel's answer before any call confirmed for the new one. Its datagrams' counters
//! are at most its start plus the clock skew; the new epoch's fence is set by a
//! confirmed call to its start plus the call timeout plus the skew, which is above them.
//!
//! The questions go out at once, one thread per sentinel holding its connection (a
//! sentinel that does not answer costs no time while the others form a majority); the
//! tally is a pure function, tested below.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use socket2::SockAddr;

use crate::redis::SentinelLink;

/// How long an idle sentinel thread waits before looking again whether it is still
/// wanted (it ends when its store is dropped).
const IDLE: Duration = Duration::from_secs(60);

/// One question to all sentinels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

struct Question {
    id: u64,
    deadline: Instant,
}

struct Answer {
    id: u64,
    sentinel: usize,
    primary: Result<SocketAddr, String>,
}

/// The sentinels of one store, asked in parallel.
pub(crate) struct Quorum {
    master: String,
    asks: Vec<SyncSender<Question>>,
    names: Vec<String>,
    answers: Receiver<Answer>,
    next: u64,
}

/// What the answers so far say about one primary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Sentinels asked.
    pub(crate) asked: usize,
    /// Of them, naming the primary.
    pub(crate) named: usize,
    /// Answers that name another primary, or say why there was none.
    pub(crate) other: Vec<String>,
}

impl Tally {
    /// More than half of the sentinels asked.
    pub(crate) fn majority(&self) -> usize {
        self.asked / 2 + 1
    }

    /// `Some(true)` once a majority named the primary, `Some(false)` once it no longer
    /// can, `None` while it still may.
    pub(crate) fn verdict(&self) -> Option<bool> {
        if self.named >= self.majority() {
            Some(true)
        } else if self.asked - self.other.len() < self.majority() {
            Some(false)
        } else {
            None
        }
    }
}

impl Quorum {
    /// A thread per sentinel address, each keeping its own connection.
    pub(crate) fn new(addrs: &[SockAddr], master: &str) -> std::io::Result<Self> {
        let (answer, answers) = mpsc::channel();
        let mut asks = Vec::new();
        let mut names = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let (ask, questions) = mpsc::sync_channel(1);
            let link = SentinelLink::new(addr.clone());
            names.push(link.describe());
            let master = master.to_owned();
            let answer = answer.clone();
            std::thread::Builder::new()
                .name(format!("ruroco-sentinel-{i}"))
                .spawn(move || serve(i, link, &master, &questions, &answer))?;
            asks.push(ask);
        }
        Ok(Self {
            master: master.to_owned(),
            asks,
            names,
            answers,
            next: 0,
        })
    }

    /// Asks every sentinel, now, for the primary; answers are collected by
    /// [`Quorum::confirm`].
    pub(crate) fn ask(&mut self, deadline: Instant) -> Ticket {
        self.next += 1;
        for ask in &self.asks {
            // A sentinel still busy with an earlier question (its connect hanging) simply
            // does not answer this one.
            let _ = ask.try_send(Question {
                id: self.next,
                deadline,
            });
        }
        Ticket(self.next)
    }

    /// Waits (until `deadline`) for a majority naming `primary` in answer to `ticket`.
    /// The error says what the sentinels answered.
    pub(crate) fn confirm(
        &mut self,
        ticket: Ticket,
        primary: SocketAddr,
        deadline: Instant,
    ) -> Result<(), String> {
        let mut tally = Tally {
            asked: self.asks.len(),
            ..Tally::default()
        };
        let mut answered = vec![false; self.asks.len()];
        loop {
            match tally.verdict() {
                Some(true) => return Ok(()),
                Some(false) => break,
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(a) if a.id == ticket.0 => {
                    if let Some(seen) = answered.get_mut(a.sentinel) {
                        *seen = true;
                    }
                    let name = self.names.get(a.sentinel).map_or("?", String::as_str);
                    match a.primary {
                        Ok(p) if p == primary => tally.named += 1,
                        Ok(p) => tally.other.push(format!("{name} names {p}")),
                        Err(e) => tally.other.push(format!("{name}: {e}")),
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let silent: Vec<&str> = self
                        .names
                        .iter()
                        .zip(&answered)
                        .filter(|(_, seen)| !**seen)
                        .map(|(n, _)| n.as_str())
                        .collect();
                    tally
                        .other
                        .push(format!("no answer in time from {}", silent.join(", ")));
                    break;
                }
            }
        }
        Err(format!(
            "{} of {} sentinels name {primary} as the primary of `{}` (needed {}){}",
            tally.named,
            tally.asked,
            self.master,
            tally.majority(),
            if tally.other.is_empty() {
                String::new()
            } else {
                format!(": {}", tally.other.join("; "))
            }
        ))
    }
}

/// One sentinel's thread: answers questions until its store is dropped.
fn serve(
    i: usize,
    mut link: SentinelLink,
    master: &str,
    questions: &Receiver<Question>,
    answers: &Sender<Answer>,
) {
    loop {
        match questions.recv_timeout(IDLE) {
            Ok(q) if Instant::now() < q.deadline => {
                let primary = link
                    .primary_of(master, q.deadline)
                    .map_err(|e| e.to_string());
                if answers
                    .send(Answer {
                        id: q.id,
                        sentinel: i,
                        primary,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(asked: usize, named: usize, other: usize) -> Tally {
        Tally {
            asked,
            named,
            other: vec!["x".into(); other],
        }
    }

    #[test]
    fn a_majority_of_those_configured_decides() {
        assert_eq!(tally(3, 2, 0).verdict(), Some(true));
        assert_eq!(tally(3, 1, 0).verdict(), None);
        assert_eq!(tally(3, 1, 1).verdict(), None);
        assert_eq!(tally(3, 1, 2).verdict(), Some(false));
        assert_eq!(tally(3, 0, 2).verdict(), Some(false));
        assert_eq!(tally(1, 1, 0).verdict(), Some(true));
        assert_eq!(tally(1, 0, 1).verdict(), Some(false));
        assert_eq!(tally(4, 2, 0).verdict(), None);
        assert_eq!(tally(4, 3, 0).verdict(), Some(true));
        assert_eq!(tally(4, 2, 2).verdict(), Some(false));
        assert_eq!(tally(5, 3, 2).verdict(), Some(true));
    }

    #[test]
    fn two_majorities_always_share_a_sentinel() {
        for asked in 1..10 {
            let m = tally(asked, 0, 0).majority();
            assert!(2 * m > asked, "{asked}");
        }
    }

    #[test]
    fn unreachable_sentinels_refuse_within_the_deadline() {
        // Addresses of the test's own, bound and never answering: each thread's connect
        // succeeds (the backlog) but no reply comes.
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<SockAddr> = listeners
            .iter()
            .map(|l| SockAddr::from(l.local_addr().unwrap()))
            .collect();
        let mut q = Quorum::new(&addrs, "floors").unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(200);
        let t = q.ask(deadline);
        let err = q
            .confirm(t, "127.0.0.1:6379".parse().unwrap(), deadline)
            .unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(400), "{took:?}");
        assert!(err.contains("0 of 3 sentinels"), "{err}");
        for l in &listeners {
            let name = l.local_addr().unwrap().to_string();
            assert!(err.contains(&name), "{err} does not name {name}");
        }
    }
}
