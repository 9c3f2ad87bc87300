//! Replay floors shared by several servers through Redis (`floor_store = "redis://…"`).
//!
//! Each batch's authentic datagrams go to Redis in one round trip: a server-side script
//! that, for each (key, counter) in order, sets the key's floor only if the counter is
//! above it (and not a remembered refused counter) and says whether it did. Accepted
//! means Redis said yes — so of two servers given the same datagram, whichever asked
//! first runs it, once. Authentic datagrams this server refused go there too (as a floor,
//! or remembered when too far ahead), so that no other server runs them later. Floors are
//! stored as 32-digit hex, so the script compares them as strings (Lua numbers cannot
//! hold a u128).
//!
//! Fail closed: when Redis cannot be reached or answers too slowly (bounded by the
//! timeout), nothing of the batch is forwarded; the error is logged at most once every
//! [`LOG_EVERY`] and counted, and the connection is retried with backoff. Only
//! authenticated datagrams ever reach Redis; what a failed call spent is sent ahead of the
//! next one. The local floor file stays a
//! lower bound: a Redis that lost its data cannot reopen counters this server has seen.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ruroco_proto::{KeyId, Spend, MAX_REFUSED_PER_KEY};
use zeroize::Zeroizing;

use crate::redis::{Connection, Endpoint, Reply};

/// The compare-and-set of a batch. KEYS: per update, the floor key and the refused-set
/// key; ARGV: per update, `f` (advance the floor) or `r` (remember a refused counter)
/// followed by the counter in hex. A counter at or below the floor, or remembered, is
/// refused (0); otherwise `f` sets the floor (1) and `r` remembers it (0). Remembered
/// counters live in a sorted set (lexical order is numeric order for fixed-width hex),
/// pruned as the floor passes them and bounded like the local ones: past the bound the
/// smallest becomes the floor.
const SCRIPT: &str = "local out = {}
for i = 1, #ARGV do
  local fkey = KEYS[2 * i - 1]
  local rkey = KEYS[2 * i]
  local kind = string.sub(ARGV[i], 1, 1)
  local new = string.sub(ARGV[i], 2)
  local cur = redis.call('GET', fkey)
  local open = ((not cur) or new > cur) and not redis.call('ZSCORE', rkey, new)
  out[i] = 0
  if open and kind == 'f' then
    redis.call('SET', fkey, new)
    redis.call('ZREMRANGEBYLEX', rkey, '-', '[' .. new)
    out[i] = 1
  elseif open then
    redis.call('ZADD', rkey, 0, new)
    if redis.call('ZCARD', rkey) > tonumber(ARGV_MAX) then
      local low = redis.call('ZRANGE', rkey, 0, 0)[1]
      redis.call('SET', fkey, low)
      redis.call('ZREMRANGEBYLEX', rkey, '-', '[' .. low)
    end
  end
end
return out";
/// Prefix of the refused-counter sets: `ruroco:refused:<key id hex>`.
pub(crate) const REFUSED_PREFIX: &str = "ruroco:refused:";
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
    /// What batches spent while the store could not be asked, sent ahead of the next
    /// batch: a datagram refused here because the store was down must not run on
    /// another server once the store is back.
    pending: Pending,
}

/// Spends not yet in the store, bounded like the floors themselves: per key, the highest
/// floor and at most [`MAX_REFUSED_PER_KEY`] remembered counters.
#[derive(Debug, Default)]
struct Pending {
    floors: HashMap<KeyId, u128>,
    remembered: HashMap<KeyId, BTreeSet<u128>>,
}

impl Pending {
    fn add(&mut self, spend: Spend) {
        match spend {
            Spend::Floor(id, c) => {
                let floor = self.floors.entry(id).or_insert(c);
                *floor = (*floor).max(c);
            }
            Spend::Remember(id, c) => {
                let set = self.remembered.entry(id).or_default();
                set.insert(c);
                if set.len() > MAX_REFUSED_PER_KEY {
                    if let Some(low) = set.pop_first() {
                        let floor = self.floors.entry(id).or_insert(low);
                        *floor = (*floor).max(low);
                    }
                }
            }
        }
    }

    /// Every pending spend, remembered counters first (a floor sent first would make the
    /// store drop the ones below it anyway).
    fn spends(&self) -> Vec<Spend> {
        let remembered = self
            .remembered
            .iter()
            .flat_map(|(id, set)| set.iter().map(|c| Spend::Remember(*id, *c)));
        let floors = self.floors.iter().map(|(id, c)| Spend::Floor(*id, *c));
        remembered.chain(floors).collect()
    }
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
            pending: Pending::default(),
        })
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Spends each counter if it is above the stored floor and not remembered: one verdict
    /// per update, in order, `true` when a floor was advanced (the datagram may run);
    /// `Err` when the store could not be asked (then nothing may be forwarded, and the
    /// updates are kept to be sent ahead of the next call).
    pub(crate) fn advance(&mut self, now: Instant, updates: &[Spend]) -> Result<Vec<bool>, String> {
        let mut all = self.pending.spends();
        let earlier = all.len();
        all.extend_from_slice(updates);
        match self.call(now, &all) {
            Ok(verdicts) => {
                self.pending = Pending::default();
                Ok(verdicts.into_iter().skip(earlier).collect())
            }
            Err(why) => {
                for spend in updates {
                    self.pending.add(*spend);
                }
                Err(why)
            }
        }
    }

    /// One script call for `updates`: a verdict per update, in order.
    fn call(&mut self, now: Instant, updates: &[Spend]) -> Result<Vec<bool>, String> {
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
            .flat_map(|spend| {
                let (id, _) = spend.parts();
                [format!("{PREFIX}{id}"), format!("{REFUSED_PREFIX}{id}")]
            })
            .collect();
        let values: Vec<String> = updates
            .iter()
            .map(|spend| match spend {
                Spend::Floor(_, c) => format!("f{c:032x}"),
                Spend::Remember(_, c) => format!("r{c:032x}"),
            })
            .collect();
        let script = SCRIPT.replace("ARGV_MAX", &MAX_REFUSED_PER_KEY.to_string());
        let count = keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), count.as_bytes()];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        args.extend(values.iter().map(|f| f.as_bytes()));
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
