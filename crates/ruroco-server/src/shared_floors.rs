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
//! Fenced across failovers: Redis acknowledges a write (and `WAIT` counts replicas that
//! have it) without making it survive every failover: Sentinel may promote a replica that
//! never saw the last floors, and a restarted Redis may come back without them. So every
//! new connection first asks the primary who it is — its process (`run_id`, new at every
//! start) and its history (`master_replid`, new at every promotion) — and reads, or sets
//! when it is the first to ask, that epoch's fence: the time the epoch was first seen plus
//! `max_clock_skew_seconds`. Every datagram accepted before the change had a counter below
//! its acceptance time plus that skew, so nothing at or below the fence is accepted in the
//! new epoch: what a lost floor would have let through again is refused as a replay. The
//! cost is availability: for that long after a failover, a restart of Redis or the first
//! start, knocks are refused (`fence` in the log), which is why the guide asks for a small
//! skew with a shared store.
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

use crate::quorum::Quorum;
use crate::redis::{Auth, Connection, Endpoint, Reply, Resolved};

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
/// The epoch of the primary a new connection reached, and its fence: reads the primary's
/// `run_id` and `master_replid`, refuses a replica, sets `ruroco:epoch:<run_id>:<replid>`
/// to `ARGV[1]` (hex: now plus the allowed clock skew) unless it is set, and returns it
/// with the epoch's name.
const EPOCH_SCRIPT: &str =
    "local info = redis.call('INFO', 'replication') .. redis.call('INFO', 'server')
local role = string.match(info, 'role:(%a+)')
local replid = string.match(info, 'master_replid:(%x+)')
local runid = string.match(info, 'run_id:(%x+)')
if role ~= 'master' or not replid or not runid then
  return redis.error_reply('READONLY not a primary (role ' .. tostring(role) .. ')')
end
local key = 'ruroco:epoch:' .. runid .. ':' .. replid
redis.call('SET', key, ARGV[1], 'NX')
return {redis.call('GET', key), runid .. ':' .. replid}";
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
    resolved: Resolved,
    auth: Auth,
    timeout: Duration,
    /// Replicas that must hold a batch's floors (`WAIT`) before any of it runs.
    min_replicas: u32,
    /// How far ahead of the clock a counter may be (`max_clock_skew_seconds`): an epoch's
    /// fence is the time it was first seen plus this.
    skew: Duration,
    /// The fence of the epoch of the open connection: counters at or below it are refused.
    fence: u128,
    /// That epoch (`run_id:replid`), to say when it changes.
    epoch: Option<String>,
    conn: Option<Connection>,
    /// With Sentinel: the sentinels, asked in every call (see [`crate::quorum`]).
    quorum: Option<Quorum>,
    /// [`SCRIPT`] with its bound filled in, made once (shared, so a call borrows nothing).
    script: std::sync::Arc<str>,
    /// The Redis the last connection reached (with Sentinel: the primary of the time).
    last_peer: Option<String>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
    /// What batches spent while the store could not be asked, sent ahead of the next
    /// batch: a datagram refused here because the store was down must not run on
    /// another server once the store is back.
    pending: Pending,
}

/// Why a call to the store failed.
enum Failure {
    /// Waiting out the backoff after a failure.
    Backoff(Duration),
    /// No connection could be made (or authenticated).
    Connect(std::io::Error),
    /// The connection failed mid-call, or the deadline passed.
    Io(std::io::Error),
    /// Redis answered with an error (a script error, `READONLY` on a demoted primary, …).
    Refused(String),
    /// A reply of a shape the script never returns.
    Shape(String),
    /// Fewer replicas than `floor_store_min_replicas` acknowledged in time.
    Replicas(i64, u32),
    /// No majority of the sentinels named the primary during the call.
    Quorum(String),
}

impl Failure {
    fn describe(&self, endpoint: &Endpoint, timeout: Duration) -> String {
        match self {
            Failure::Backoff(left) => format!(
                "{endpoint} is unreachable; next attempt in {} ms",
                left.as_millis()
            ),
            Failure::Connect(e) => format!("cannot connect to {endpoint}: {e}"),
            Failure::Quorum(why) => format!("{endpoint}: {why}"),
            Failure::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                format!(
                    "{endpoint} did not answer within {} ms: {e}",
                    timeout.as_millis()
                )
            }
            Failure::Io(e) => format!("{endpoint}: {e}"),
            Failure::Refused(e) => format!("{endpoint} refused the floor update: {e}"),
            Failure::Shape(r) => format!("{endpoint} answered {r}, not one verdict per update"),
            Failure::Replicas(acked, want) => format!(
                "{endpoint}: only {acked} of floor_store_min_replicas = {want} replica(s) acknowledged within {} ms",
                timeout.as_millis()
            ),
        }
    }
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
    /// From the config: the URL (its names resolved now, never in the receive loop), the
    /// ACL user and password file (read now; the password is never logged), the timeout of
    /// each call and the replicas that must acknowledge. Errors name the key or the file.
    pub(crate) fn new(
        url: &str,
        user: Option<&str>,
        password_file: Option<&Path>,
        timeout: Duration,
        min_replicas: u32,
        skew: Duration,
    ) -> anyhow::Result<Self> {
        let endpoint = Self::check(url, user, password_file)?;
        let resolved = endpoint
            .resolve()
            .map_err(|e| anyhow::anyhow!("key `floor_store`: cannot resolve {endpoint}: {e}"))?;
        let quorum = resolved
            .sentinels()
            .map(|(addrs, master)| Quorum::new(addrs, master))
            .transpose()
            .context("cannot start the threads that ask the sentinels")?;
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
            resolved,
            auth: Auth {
                user: user.map(str::to_owned),
                password,
            },
            timeout,
            min_replicas,
            skew,
            fence: 0,
            epoch: None,
            conn: None,
            quorum,
            script: SCRIPT
                .replace("ARGV_MAX", &MAX_REFUSED_PER_KEY.to_string())
                .into(),
            last_peer: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
            last_log: None,
            suppressed: 0,
            pending: Pending::default(),
        })
    }

    /// What `--check` asks of the store's settings, without any network I/O: the URL
    /// parses, the password file reads, a user has a password. (Whether the name resolves
    /// is a warning of its own: `ExecReload=` runs `--check`, and a reload must not fail
    /// — keeping a revoked key — because a resolver is down.)
    pub(crate) fn check(
        url: &str,
        user: Option<&str>,
        password_file: Option<&Path>,
    ) -> anyhow::Result<Endpoint> {
        let endpoint =
            Endpoint::parse(url).map_err(|e| anyhow::anyhow!("key `floor_store`: {e}"))?;
        if let Some(path) = password_file {
            std::fs::File::open(path).with_context(|| {
                format!("cannot read floor_store_password_file {}", path.display())
            })?;
        }
        if user.is_some() && password_file.is_none() {
            anyhow::bail!("key `floor_store_user` needs floor_store_password_file");
        }
        Ok(endpoint)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.resolved.endpoint
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

    /// One script call for `updates`: a verdict per update, in order. A reused connection
    /// that fails is tried once more on a fresh one (a connection Redis or a NAT closed
    /// while idle must not lose a knock); repeating the compare-and-set is safe, since a
    /// second run can only refuse more.
    fn call(&mut self, now: Instant, updates: &[Spend]) -> Result<Vec<bool>, String> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let reused = self.conn.is_some();
        let deadline = now + self.timeout;
        match self.exchange(now, deadline, updates) {
            Ok(verdicts) => Ok(verdicts),
            Err(Failure::Io(e)) if reused => {
                tracing::info!(
                    "floor store {}: the open connection failed ({e}); trying a fresh one",
                    self.endpoint()
                );
                self.conn = None;
                self.exchange(Instant::now(), deadline, updates)
                    .map_err(|f| self.failed(now, f.describe(self.endpoint(), self.timeout)))
            }
            Err(f @ Failure::Backoff(_)) => Err(f.describe(self.endpoint(), self.timeout)),
            Err(f) => {
                let why = f.describe(self.endpoint(), self.timeout);
                Err(self.failed(now, why))
            }
        }
    }

    /// Reads, or sets, the fence of the epoch `conn` reached: `wall` (the call's start)
    /// plus the skew — and, with Sentinel, plus the call's timeout, since the sentinels'
    /// answers that confirmed the epoch came at most that late (see [`crate::quorum`]).
    fn epoch(
        &mut self,
        conn: &mut Connection,
        wall: Duration,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let margin = if self.quorum.is_some() {
            self.timeout
        } else {
            Duration::ZERO
        };
        let proposed = format!("{:032x}", (wall + self.skew + margin).as_nanos());
        let reply = conn
            .pipeline(
                &[&[b"EVAL", EPOCH_SCRIPT.as_bytes(), b"0", proposed.as_bytes()]],
                2,
                deadline,
            )
            .map_err(Failure::Io)?
            .pop();
        let (fence, epoch) = match reply {
            Some(Reply::Array(Some(items))) => match (items.first(), items.get(1)) {
                (Some(Reply::Bulk(Some(fence))), Some(Reply::Bulk(Some(epoch)))) => (
                    std::str::from_utf8(fence)
                        .ok()
                        .and_then(|h| u128::from_str_radix(h, 16).ok()),
                    String::from_utf8_lossy(epoch).into_owned(),
                ),
                _ => (None, String::new()),
            },
            Some(Reply::Error(e)) => return Err(Failure::Refused(e)),
            other => return Err(Failure::Shape(format!("{other:?}"))),
        };
        let Some(fence) = fence else {
            return Err(Failure::Shape("an epoch without a readable fence".into()));
        };
        if self.epoch.as_deref() != Some(epoch.as_str()) {
            let until = u64::try_from(fence / 1_000_000).unwrap_or(u64::MAX);
            let waited = wall.as_nanos() < fence;
            let set_here = proposed == format!("{fence:032x}");
            tracing::warn!(
                "floor store {}: primary epoch {epoch}{}; datagrams with counters up to {} are refused as replays (the fence: a failover or restart may have lost floors){}",
                self.resolved.endpoint,
                if set_here { ", new" } else { "" },
                ruroco_config::utc(until),
                if waited { "" } else { " — already past" }
            );
            self.epoch = Some(epoch);
        }
        self.fence = fence;
        Ok(())
    }

    fn exchange(
        &mut self,
        now: Instant,
        deadline: Instant,
        updates: &[Spend],
    ) -> Result<Vec<bool>, Failure> {
        if now >= deadline {
            return Err(Failure::Io(std::io::ErrorKind::TimedOut.into()));
        }
        if self.conn.is_none() {
            // The call's start, for a new epoch's fence.
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            if let Some(at) = self.retry_at {
                if now < at {
                    return Err(Failure::Backoff(at.saturating_duration_since(now)));
                }
            }
            let conn =
                Connection::open(&self.resolved, &self.auth, deadline).map_err(Failure::Connect)?;
            let was_down = self.retry_at.take().is_some();
            match self.last_peer.as_deref().filter(|p| *p != conn.peer) {
                Some(before) => tracing::warn!(
                    "floor store {} now answers at {} (was {before}): a failover",
                    self.resolved.endpoint,
                    conn.peer
                ),
                None if was_down => tracing::info!(
                    "floor store {} reachable again at {}",
                    self.resolved.endpoint,
                    conn.peer
                ),
                None => {}
            }
            self.last_peer = Some(conn.peer.clone());
            let mut conn = conn;
            // A new epoch's fence is set only by a call the sentinels confirmed.
            if let Some(q) = self.quorum.as_mut() {
                let t = q.ask(deadline);
                q.confirm(t, primary_of(&conn)?, deadline)
                    .map_err(Failure::Quorum)?;
            }
            self.epoch(&mut conn, wall, deadline)?;
            self.backoff = MIN_BACKOFF;
            self.conn = Some(conn);
        }
        // At or below the epoch's fence: refused here, whatever the store holds.
        let fence = self.fence;
        let open: Vec<Spend> = updates
            .iter()
            .copied()
            .filter(|spend| spend.parts().1 > fence)
            .collect();
        if open.is_empty() {
            return Ok(vec![false; updates.len()]);
        }
        let n = open.len();
        let keys: Vec<String> = open
            .iter()
            .flat_map(|spend| {
                let (id, _) = spend.parts();
                [format!("{PREFIX}{id}"), format!("{REFUSED_PREFIX}{id}")]
            })
            .collect();
        let values: Vec<String> = open
            .iter()
            .map(|spend| match spend {
                Spend::Floor(_, c) => format!("f{c:032x}"),
                Spend::Remember(_, c) => format!("r{c:032x}"),
            })
            .collect();
        let script = std::sync::Arc::clone(&self.script);
        let count = keys.len().to_string();
        let mut eval: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), count.as_bytes()];
        eval.extend(keys.iter().map(|k| k.as_bytes()));
        eval.extend(values.iter().map(|f| f.as_bytes()));
        let eval = eval.as_slice();
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Connect(std::io::ErrorKind::NotConnected.into()));
        };
        // The sentinels are asked while the script and WAIT run.
        let ticket = match self.quorum.as_mut() {
            Some(q) => Some((q.ask(deadline), primary_of(conn)?)),
            None => None,
        };
        let replicas = self.min_replicas.to_string();
        // WAIT's timeout is what is left of the deadline (never 0: that would wait forever).
        let wait_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1)
            .to_string();
        let wait: [&[u8]; 3] = [b"WAIT", replicas.as_bytes(), wait_ms.as_bytes()];
        let replies = if self.min_replicas > 0 {
            conn.pipeline(&[eval, &wait], n, deadline)
        } else {
            conn.pipeline(&[eval], n, deadline)
        }
        .map_err(Failure::Io)?;
        let mut replies = replies.into_iter();
        let verdicts = match replies.next() {
            Some(Reply::Array(Some(items))) if items.len() == n => items
                .iter()
                .map(|r| match r {
                    Reply::Int(v @ 0..=1) => Ok(*v == 1),
                    other => Err(Failure::Shape(format!("{other:?}"))),
                })
                .collect::<Result<Vec<bool>, Failure>>()?,
            Some(Reply::Error(e)) => return Err(Failure::Refused(e)),
            other => return Err(Failure::Shape(format!("{other:?}"))),
        };
        if self.min_replicas > 0 {
            match replies.next() {
                Some(Reply::Int(acked)) if acked >= i64::from(self.min_replicas) => {}
                Some(Reply::Int(acked)) => return Err(Failure::Replicas(acked, self.min_replicas)),
                Some(Reply::Error(e)) => return Err(Failure::Refused(e)),
                other => return Err(Failure::Shape(format!("{other:?}"))),
            }
        }
        if let (Some(q), Some((t, primary))) = (self.quorum.as_mut(), ticket) {
            q.confirm(t, primary, deadline).map_err(Failure::Quorum)?;
        }
        let mut verdicts = verdicts.into_iter();
        Ok(updates
            .iter()
            .map(|spend| spend.parts().1 > fence && verdicts.next().unwrap_or(false))
            .collect())
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

/// The primary a Sentinel connection reached.
fn primary_of(conn: &Connection) -> Result<std::net::SocketAddr, Failure> {
    conn.primary
        .ok_or_else(|| Failure::Shape(format!("no primary named for {}", conn.peer)))
}
