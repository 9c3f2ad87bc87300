//! Replay floors shared by several servers through Redis (`floor_store = "redis://…"`).
//!
//! Each batch's accepted datagrams go to Redis in one round trip: a server-side script
//! that, for each (key, counter) in order, sets the key's floor only if the counter is
//! above it and says whether it did. Accepted means Redis said yes — so of two servers
//! given the same datagram, whichever asked first runs it, once. Floors are stored as
//! 32-digit hex, so the script compares them as strings (Lua numbers cannot hold a u128).
//!
//! Fail closed: when Redis cannot be reached or answers too slowly (bounded by the
//! timeout), nothing of the batch is forwarded; the error is logged at most once every
//! [`LOG_EVERY`] and counted, and the connection is retried with backoff. Only
//! authenticated, otherwise valid datagrams ever reach Redis. The local floor file stays a
//! lower bound: a Redis that lost its data cannot reopen counters this server has seen.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ruroco_proto::KeyId;
use zeroize::Zeroizing;

use crate::redis::{Connection, Endpoint, Reply};

/// The compare-and-set of a batch. KEYS: floor keys; ARGV: the new floors (hex).
const SCRIPT: &str = "local out = {}
for i, key in ipairs(KEYS) do
  local new = ARGV[i]
  local cur = redis.call('GET', key)
  if (not cur) or new > cur then
    redis.call('SET', key, new)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out";
/// Prefix of the floor keys: `ruroco:floor:<key id hex>`.
pub(crate) const PREFIX: &str = "ruroco:floor:";
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Shortest pause.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// At most one error line this often.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// The shared store and its connection state.
pub(crate) struct SharedFloors {
    endpoint: Endpoint,
    password: Option<Zeroizing<String>>,
    timeout: Duration,
    conn: Option<Connection>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl SharedFloors {
    /// From the config: the URL, the password file (read now; the password is never
    /// logged) and the timeout. Errors name the key or the file.
    pub(crate) fn new(
        url: &str,
        password_file: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let endpoint =
            Endpoint::parse(url).map_err(|e| anyhow::anyhow!("key `floor_store`: {e}"))?;
        let password = match password_file {
            Some(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read floor_store_password_file {}", path.display())
                })?);
                Some(Zeroizing::new(
                    text.trim_end_matches(['\n', '\r']).to_owned(),
                ))
            }
            None => None,
        };
        Ok(Self {
            endpoint,
            password,
            timeout,
            conn: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
            last_log: None,
            suppressed: 0,
        })
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Advances each floor if its counter is above the stored one: one verdict per update,
    /// in order; `Err` when the store could not be asked (then nothing may be forwarded).
    pub(crate) fn advance(
        &mut self,
        now: Instant,
        updates: &[(KeyId, u128)],
    ) -> Result<Vec<bool>, String> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => {
                if let Some(at) = self.retry_at {
                    if now < at {
                        return Err(format!(
                            "{} is unreachable; next attempt in {} ms",
                            self.endpoint,
                            at.saturating_duration_since(now).as_millis()
                        ));
                    }
                }
                match Connection::open(&self.endpoint, self.password.as_ref(), self.timeout) {
                    Ok(conn) => {
                        if self.retry_at.take().is_some() {
                            tracing::info!("floor store {} reachable again", self.endpoint);
                        }
                        self.backoff = MIN_BACKOFF;
                        self.conn.insert(conn)
                    }
                    Err(e) => {
                        return Err(
                            self.failed(now, format!("cannot connect to {}: {e}", self.endpoint))
                        )
                    }
                }
            }
        };
        let keys: Vec<String> = updates
            .iter()
            .map(|(id, _)| format!("{PREFIX}{id}"))
            .collect();
        let floors: Vec<String> = updates.iter().map(|(_, f)| format!("{f:032x}")).collect();
        let count = updates.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", SCRIPT.as_bytes(), count.as_bytes()];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        args.extend(floors.iter().map(|f| f.as_bytes()));
        let reply = conn.call(&args);
        match reply {
            Ok(Reply::Array(Some(items))) if items.len() == updates.len() => {
                Ok(items.iter().map(|r| matches!(r, Reply::Int(1))).collect())
            }
            Ok(Reply::Error(e)) => Err(self.failed(
                now,
                format!("{} refused the floor update: {e}", self.endpoint),
            )),
            Ok(other) => Err(self.failed(now, format!("{} answered {other:?}", self.endpoint))),
            Err(e) => Err(self.failed(
                now,
                format!(
                    "{} did not answer within {} ms: {e}",
                    self.endpoint,
                    self.timeout.as_millis()
                ),
            )),
        }
    }

    /// Drops the connection and schedules the next attempt.
    fn failed(&mut self, now: Instant, why: String) -> String {
        self.conn = None;
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        why
    }

    /// Logs a store error at most once every [`LOG_EVERY`], with how many were not logged.
    pub(crate) fn log_error(&mut self, now: Instant, why: &str, datagrams: usize) {
        if self
            .last_log
            .is_some_and(|at| now.saturating_duration_since(at) < LOG_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        let more = std::mem::take(&mut self.suppressed);
        self.last_log = Some(now);
        tracing::error!(
            "floor store: {why}; {datagrams} accepted datagram(s) not forwarded (fail closed){}",
            if more > 0 {
                format!("; {more} similar error(s) not logged")
            } else {
                String::new()
            }
        );
    }
}
