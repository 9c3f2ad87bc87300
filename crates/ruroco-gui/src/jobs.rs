//! Sends, off the UI thread. Each click starts one thread that plans, reads keys and
//! resolves addresses (no lock held), then builds and sends every datagram under the
//! counter lock in one go (as `ruroco-client send @group` does) and lets it go at once:
//! the command-line client is never kept waiting by the window. Each server's result comes
//! back over a channel, and the window is woken to show it.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};

use ruroco_client_core::profile::Profile;
use ruroco_client_core::{send, wait};

/// Clicks on one server's Send closer together than this are one click (a double
/// click, or a bounce): desktops take up to 500 ms for a double click.
pub const DOUBLE_CLICK: std::time::Duration = std::time::Duration::from_millis(600);

/// Whether a send at `now` follows the last one, at `last`, too soon to be meant.
pub fn too_soon(last: Option<std::time::Instant>, now: std::time::Instant) -> bool {
    last.is_some_and(|at| now.saturating_duration_since(at) < DOUBLE_CLICK)
}

/// How long a key copied with "Copy key" stays on the clipboard before the window wipes it.
pub const CLIPBOARD_KEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a timer set for `at` has run out at `now`.
pub fn due(at: std::time::Instant, now: std::time::Instant) -> bool {
    now >= at
}

/// What became of one server's send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// On its way.
    Sending,
    /// Left for these addresses at this time; what failed beside them.
    Sent {
        /// When, in Unix milliseconds (shown in the desktop's zone by [`crate::clock`]).
        at: i64,
        /// The command sent.
        command: String,
        /// Where to.
        to: Vec<String>,
        /// Addresses of the server that could not be sent to, and why.
        partly_failed: Vec<String>,
        /// With a `wait_port`: whether the port opened (and after how long), or not.
        watched: Option<Watched>,
    },
    /// Nothing left; why.
    Failed(String),
}

/// What watching a server's `wait_port` after the knock found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Watched {
    /// The port answered.
    Open {
        /// The port watched.
        port: u16,
        /// After how long, in milliseconds.
        ms: u128,
        /// Only after a second knock.
        second: bool,
    },
    /// It stayed closed through both waits.
    Closed {
        /// The port watched.
        port: u16,
        /// How long each wait lasted, in seconds.
        secs: u64,
    },
}

/// How long each wait for a `wait_port` lasts.
pub const WATCH: std::time::Duration = std::time::Duration::from_secs(5);

/// The sends in flight and their results.
pub struct Jobs {
    tx: Sender<(String, Outcome)>,
    rx: Receiver<(String, Outcome)>,
}

impl Default for Jobs {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self { tx, rx }
    }
}

impl Jobs {
    /// Sends the saved servers `names` (one datagram per address of each), in a thread of
    /// its own; `wake` is called after each result.
    pub fn send(&self, dir: PathBuf, names: Vec<String>, wake: impl Fn() + Send + 'static) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for (name, outcome) in send_all(&dir, &names) {
                let _ = tx.send((name, outcome));
            }
            wake();
        });
    }

    /// The results that arrived since the last call.
    pub fn results(&self) -> Vec<(String, Outcome)> {
        self.rx.try_iter().collect()
    }
}

/// Plans, prepares and sends; one outcome per name.
fn send_all(dir: &std::path::Path, names: &[String]) -> Vec<(String, Outcome)> {
    let profile = match Profile::load(dir) {
        Ok(p) => p,
        Err(e) => {
            let why = format!("{e:#}");
            return names
                .iter()
                .map(|n| (n.clone(), Outcome::Failed(why.clone())))
                .collect();
        }
    };
    let mut done = Vec::new();
    let mut ready = Vec::new();
    for name in names {
        let prepared = profile
            .server(name)
            .and_then(|server| {
                send::plan(
                    Some(server),
                    None,
                    None,
                    None,
                    &send::Overrides::default(),
                    dir,
                )
            })
            .and_then(send::prepare);
        match prepared {
            Ok(p) => ready.push((name.clone(), p)),
            Err(e) => done.push((name.clone(), Outcome::Failed(format!("{e:#}")))),
        }
    }
    if ready.is_empty() {
        return done;
    }
    let (ready_names, prepared): (Vec<String>, Vec<send::Prepared>) = ready.into_iter().unzip();
    match send::transmit(&prepared, dir) {
        Err(e) => {
            let why = format!("{e:#}");
            done.extend(
                ready_names
                    .into_iter()
                    .map(|n| (n, Outcome::Failed(why.clone()))),
            );
        }
        Ok(results) => {
            let at = crate::clock::now_ms();
            for ((name, p), result) in ready_names.into_iter().zip(&prepared).zip(results) {
                let outcome = match result {
                    Ok(delivery) => Outcome::Sent {
                        at,
                        command: p.plan.command.clone(),
                        to: delivery.sent.iter().map(ToString::to_string).collect(),
                        partly_failed: delivery
                            .failed
                            .iter()
                            .map(|(addr, why)| format!("{addr}: {why}"))
                            .collect(),
                        watched: profile
                            .server(&name)
                            .ok()
                            .and_then(|s| s.wait_port)
                            .and_then(|port| watch(dir, &p.plan, port)),
                    },
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                };
                done.push((name, outcome));
            }
        }
    }
    done
}

/// Knock, then know: tries `port` of the server for [`WATCH`]; if it stays closed, sends
/// a fresh datagram once and tries again. `None` when the address has no host to try
/// (it was just sent to, so this does not happen).
fn watch(dir: &std::path::Path, plan: &send::Plan, port: u16) -> Option<Watched> {
    let (host, _) = ruroco_client_core::target::split_host_port(&plan.address).ok()?;
    let knock_again = |_: &anyhow::Error| {
        send::prepare(plan.clone())
            .and_then(|p| send::transmit(std::slice::from_ref(&p), dir))
            .map(|_| ())
    };
    Some(match wait::watch(&host, port, WATCH, knock_again) {
        Ok(wait::Watched::Open { took, second }) => Watched::Open {
            port,
            ms: took.as_millis(),
            second,
        },
        // Closed, or the second knock could not be sent.
        Ok(wait::Watched::Closed(_)) | Err(_) => Watched::Closed {
            port,
            secs: WATCH.as_secs(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_clipboard_is_wiped_once_its_time_is_up() {
        let t = Instant::now();
        let at = t + CLIPBOARD_KEEP;
        assert!(!due(at, t));
        assert!(!due(at, t + Duration::from_secs(29)));
        assert!(due(at, t + CLIPBOARD_KEEP));
    }

    #[test]
    fn a_second_click_within_the_double_click_time_is_the_same_click() {
        let t = Instant::now();
        assert!(!too_soon(None, t));
        assert!(too_soon(Some(t), t + Duration::from_millis(300)));
        assert!(!too_soon(Some(t), t + DOUBLE_CLICK));
        assert!(!too_soon(Some(t), t + Duration::from_secs(5)));
    }
}
