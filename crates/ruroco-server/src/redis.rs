//! A small Redis client: RESP2 over one TCP or Unix connection, found directly or through
//! Redis Sentinel. Written here because the floors need very little (AUTH, SELECT, EVAL,
//! WAIT and one Sentinel query) and every general client either reads replies without a
//! deadline for the whole reply or accepts any shape and size; here both are bounds, tested
//! against a hostile fake Redis (`tests/it/redis_hostile.rs`) and fuzzed (`redis_reply`):
//!
//! - one deadline per call (connect, authentication, each request): the socket timeout
//!   is set to the time left before every read and write, so a reply trickled a byte at a
//!   time is cut at the deadline;
//! - names are resolved once, when the store is configured (start, reload), never in the
//!   receive loop; Sentinel must name the primary by IP address;
//! - replies are accepted only flat: status, error, integer, bulk strings of at most
//!   [`MAX_BULK`] bytes, and arrays of those of at most the length the caller expects.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use zeroize::Zeroizing;

/// Longest bulk string accepted in a reply: a host name, a port, a number.
pub(crate) const MAX_BULK: usize = 256;
/// Longest status or error line.
const MAX_LINE: usize = 1024;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Where Redis is. URLs name no user or password (those come from the config and a file,
/// so the URL can be logged):
/// `redis://host:port/db`, `redis+unix:///path/to/redis.sock?db=N`, or
/// `redis-sentinel://host:port,host:port/master-name[/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Tcp {
        host: String,
        port: u16,
        db: u32,
    },
    Unix {
        path: PathBuf,
        db: u32,
    },
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        db: u32,
    },
}

fn host_port(hostport: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or("unclosed [ in the host")?;
        (h, p.strip_prefix(':').unwrap_or(""))
    } else {
        hostport.rsplit_once(':').unwrap_or((hostport, ""))
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = if port.is_empty() {
        default
    } else {
        port.parse()
            .map_err(|_| format!("port `{port}` is not a number"))?
    };
    Ok((host.to_owned(), port))
}

fn db_number(db: &str) -> Result<u32, String> {
    db.parse()
        .map_err(|_| format!("database `{db}` is not a number"))
}

impl Endpoint {
    /// Parses a floor store URL; the error says what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected redis://host:port/db, redis+unix:///path or redis-sentinel://host:port,…/master")?;
        if rest.contains('@') {
            return Err("put no user or password in the URL; set floor_store_user and name a password file in floor_store_password_file".into());
        }
        match scheme {
            "redis" => {
                let (hostport, db) = match rest.split_once('/') {
                    Some((hp, "")) => (hp, 0),
                    Some((hp, db)) => (hp, db_number(db)?),
                    None => (rest, 0),
                };
                let (host, port) = host_port(hostport, 6379)?;
                Ok(Self::Tcp { host, port, db })
            }
            "redis+unix" => {
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                if !path.starts_with('/') {
                    return Err("expected redis+unix:///absolute/path/to/redis.sock".into());
                }
                let db = match query.strip_prefix("db=") {
                    Some(db) => db_number(db)?,
                    None if query.is_empty() => 0,
                    None => return Err(format!("unknown option `{query}` (only db=N)")),
                };
                Ok(Self::Unix {
                    path: PathBuf::from(path),
                    db,
                })
            }
            "redis-sentinel" => {
                let (hosts, tail) = rest
                    .split_once('/')
                    .ok_or("expected redis-sentinel://host:port,host:port/master-name")?;
                let (master, db) = match tail.split_once('/') {
                    Some((m, db)) => (m, db_number(db)?),
                    None => (tail, 0),
                };
                if master.is_empty() {
                    return Err("no master name after the sentinels".into());
                }
                let sentinels = hosts
                    .split(',')
                    .map(|h| host_port(h, 26379))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Self::Sentinel {
                    sentinels,
                    master: master.to_owned(),
                    db,
                })
            }
            "rediss" => Err("TLS (rediss://) is not supported; reach Redis over loopback, a private network, a Unix socket (redis+unix://) or a TLS tunnel beside it".into()),
            other => Err(format!("unknown scheme `{other}`")),
        }
    }

    fn db(&self) -> u32 {
        match self {
            Self::Tcp { db, .. } | Self::Unix { db, .. } | Self::Sentinel { db, .. } => *db,
        }
    }

    /// Resolves host names now (never later, in the receive loop).
    pub(crate) fn resolve(&self) -> std::io::Result<Resolved> {
        let resolve = |host: &str, port: u16| -> std::io::Result<Vec<SockAddr>> {
            Ok((host, port)
                .to_socket_addrs()?
                .map(SockAddr::from)
                .collect())
        };
        let addrs = match self {
            Self::Tcp { host, port, .. } => resolve(host, *port)?,
            Self::Unix { path, .. } => vec![SockAddr::unix(path)?],
            Self::Sentinel { sentinels, .. } => {
                let mut all = Vec::new();
                for (host, port) in sentinels {
                    all.extend(resolve(host, *port)?);
                }
                all
            }
        };
        if addrs.is_empty() {
            return Err(other(format!("{self} resolves to no address")));
        }
        Ok(Resolved {
            endpoint: self.clone(),
            addrs,
        })
    }
}

impl Resolved {
    /// The sentinels' addresses and the master's name, for a Sentinel endpoint.
    pub(crate) fn sentinels(&self) -> Option<(&[SockAddr], &str)> {
        match &self.endpoint {
            Endpoint::Sentinel { master, .. } => Some((&self.addrs, master)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hp = |host: &str, port: u16| {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        };
        match self {
            Self::Tcp { host, port, db } => write!(f, "redis://{}/{db}", hp(host, *port)),
            Self::Unix { path, db } => write!(f, "redis+unix://{}?db={db}", path.display()),
            Self::Sentinel {
                sentinels,
                master,
                db,
            } => {
                let list: Vec<String> = sentinels.iter().map(|(h, p)| hp(h, *p)).collect();
                write!(f, "redis-sentinel://{}/{master}/{db}", list.join(","))
            }
        }
    }
}

/// An endpoint with its addresses looked up.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) endpoint: Endpoint,
    /// Redis itself, its Unix socket, or the sentinels.
    addrs: Vec<SockAddr>,
}

/// Who to authenticate as (an ACL user, or the default user when `None`).
pub(crate) struct Auth {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Zeroizing<String>>,
}

/// A socket whose every read and write may take only the time left before a deadline.
struct Timed {
    socket: Socket,
    deadline: Instant,
}

impl Timed {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.socket.set_read_timeout(Some(self.left()?))?;
        self.socket.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.socket.set_write_timeout(Some(self.left()?))?;
        self.socket.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One open connection.
pub(crate) struct Connection {
    reader: BufReader<Timed>,
    /// The address of the Redis this connection reached (the primary, with Sentinel).
    pub(crate) peer: String,
    /// With Sentinel: the primary the sentinel named, which this connection reached.
    pub(crate) primary: Option<SocketAddr>,
}

fn connect(addr: &SockAddr, deadline: Instant) -> std::io::Result<Socket> {
    let domain = if addr.is_unix() {
        Domain::UNIX
    } else {
        Domain::for_address(
            addr.as_socket()
                .ok_or_else(|| other("not an IP address".into()))?,
        )
    };
    let socket = Socket::new(domain, Type::STREAM, None)?;
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    socket.connect_timeout(addr, left)?;
    if !addr.is_unix() {
        socket.set_tcp_nodelay(true)?;
    }
    Ok(socket)
}

fn describe(addr: &SockAddr) -> String {
    match (addr.as_socket(), addr.as_pathname()) {
        (Some(a), _) => a.to_string(),
        (None, Some(p)) => p.display().to_string(),
        _ => "?".into(),
    }
}

impl Connection {
    fn over(socket: Socket, peer: String, deadline: Instant) -> Self {
        Self {
            reader: BufReader::with_capacity(4096, Timed { socket, deadline }),
            peer,
            primary: None,
        }
    }

    /// Connects (through Sentinel when the endpoint says so), authenticates and selects
    /// the database, all before `deadline`.
    pub(crate) fn open(
        resolved: &Resolved,
        auth: &Auth,
        deadline: Instant,
    ) -> std::io::Result<Self> {
        let mut last = other("no address".into());
        let mut conn = None;
        for addr in &resolved.addrs {
            let attempt = match &resolved.endpoint {
                Endpoint::Sentinel { master, .. } => {
                    primary(addr, master, deadline).and_then(|p| {
                        let a = SockAddr::from(p);
                        connect(&a, deadline).map(|s| Self {
                            primary: Some(p),
                            ..Self::over(s, p.to_string(), deadline)
                        })
                    })
                }
                _ => connect(addr, deadline).map(|s| Self::over(s, describe(addr), deadline)),
            };
            match attempt {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut conn = conn.ok_or(last)?;
        if let Some(password) = &auth.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &auth.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.expect_ok(&args, "AUTH", deadline)?;
        }
        let db = resolved.endpoint.db();
        if db != 0 {
            let db = db.to_string();
            conn.expect_ok(&[b"SELECT", db.as_bytes()], "SELECT", deadline)?;
        }
        Ok(conn)
    }

    fn expect_ok(&mut self, args: &[&[u8]], what: &str, deadline: Instant) -> std::io::Result<()> {
        match self.pipeline(&[args], 0, deadline)?.pop() {
            Some(Reply::Status(_)) => Ok(()),
            Some(Reply::Error(e)) => Err(other(format!("{what} refused: {e}"))),
            r => Err(other(format!("{what}: unexpected reply {r:?}"))),
        }
    }

    /// Sends `commands` in one write and reads one reply each, all before `deadline`;
    /// arrays may hold at most `max_array` elements.
    pub(crate) fn pipeline(
        &mut self,
        commands: &[&[&[u8]]],
        max_array: usize,
        deadline: Instant,
    ) -> std::io::Result<Vec<Reply>> {
        self.reader.get_mut().deadline = deadline;
        let mut out = Vec::new();
        for args in commands {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in *args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        self.reader.get_mut().write_all(&out)?;
        commands
            .iter()
            .map(|_| read_reply(&mut self.reader, max_array))
            .collect()
    }
}

/// Asks the sentinel at `addr` for the primary of `master`: an IP address and port.
fn primary(addr: &SockAddr, master: &str, deadline: Instant) -> std::io::Result<SocketAddr> {
    let socket = connect(addr, deadline)?;
    Connection::over(socket, describe(addr), deadline).primary_of(master, deadline)
}

/// A connection to one sentinel, kept open between questions.
pub(crate) struct SentinelLink {
    addr: SockAddr,
    conn: Option<Connection>,
}

impl SentinelLink {
    pub(crate) fn new(addr: SockAddr) -> Self {
        Self { addr, conn: None }
    }

    pub(crate) fn describe(&self) -> String {
        describe(&self.addr)
    }

    /// The primary this sentinel names for `master` now (connecting first if need be;
    /// a kept connection that fails is replaced once, within the same deadline); the
    /// connection is dropped on any failure.
    pub(crate) fn primary_of(
        &mut self,
        master: &str,
        deadline: Instant,
    ) -> std::io::Result<SocketAddr> {
        if let Some(mut conn) = self.conn.take() {
            if let Ok(answer) = conn.primary_of(master, deadline) {
                self.conn = Some(conn);
                return Ok(answer);
            }
        }
        let socket = connect(&self.addr, deadline)?;
        let mut conn = Connection::over(socket, describe(&self.addr), deadline);
        let answer = conn.primary_of(master, deadline)?;
        self.conn = Some(conn);
        Ok(answer)
    }
}

impl Connection {
    /// Asks the sentinel at the other end for the primary of `master`.
    fn primary_of(&mut self, master: &str, deadline: Instant) -> std::io::Result<SocketAddr> {
        let reply = self
            .pipeline(
                &[&[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()]],
                2,
                deadline,
            )?
            .pop();
        let Some(Reply::Array(Some(items))) = reply else {
            return Err(other(format!(
                "sentinel {} knows no primary `{master}`: {reply:?}",
                self.peer
            )));
        };
        let text = |r: Option<&Reply>| match r {
            Some(Reply::Bulk(Some(b))) => String::from_utf8(b.clone()).ok(),
            _ => None,
        };
        let (host, port) = (text(items.first()), text(items.get(1)));
        let ip = host.as_deref().and_then(|h| h.parse::<IpAddr>().ok());
        let port = port.as_deref().and_then(|p| p.parse::<u16>().ok());
        match (ip, port) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(other(format!(
                "sentinel {} named the primary as {host:?}:{port:?}; it must be an IP address (resolve-hostnames no)",
                self.peer
            ))),
        }
    }
}

fn other(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// Reads one reply: a status, error, integer or bulk string, or a flat array of at most
/// `max_array` integers and bulk strings. Anything else, larger or nested, is an error
/// before any memory is taken for it.
pub(crate) fn read_reply(r: &mut impl BufRead, max_array: usize) -> std::io::Result<Reply> {
    let line = read_line(r)?;
    if let Some(rest) = line.strip_prefix('*') {
        let n: i64 = rest
            .parse()
            .map_err(|_| other(format!("bad number `{rest}` in reply")))?;
        if n < 0 {
            return Ok(Reply::Array(None));
        }
        let n = usize::try_from(n).map_err(|_| other("bad length".into()))?;
        if n > max_array {
            return Err(other(format!(
                "array reply of {n} elements where at most {max_array} were expected"
            )));
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(read_element(r)?);
        }
        return Ok(Reply::Array(Some(items)));
    }
    scalar(r, &line)
}

fn read_element(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(r)?;
    match line.split_at_checked(1) {
        Some((":" | "$", _)) => scalar(r, &line),
        _ => Err(other(format!(
            "array element `{}` is not an integer or bulk string",
            line.chars().take(16).collect::<String>()
        ))),
    }
}

fn scalar(r: &mut impl BufRead, line: &str) -> std::io::Result<Reply> {
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| other("empty reply line".into()))?;
    let number = || -> std::io::Result<i64> {
        rest.parse()
            .map_err(|_| other(format!("bad number `{rest}` in reply")))
    };
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Int(number()?)),
        "$" => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|_| other("bad length".into()))?;
            if n > MAX_BULK {
                return Err(other(format!("bulk reply of {n} bytes is too long")));
            }
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf)?;
            if buf.get(n..) != Some(b"\r\n".as_slice()) {
                return Err(other("bulk reply not terminated".into()));
            }
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        _ => Err(other(format!(
            "unknown reply type `{}`",
            kind.chars().take(1).collect::<String>()
        ))),
    }
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE as u64 + 2).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !line.ends_with(b"\r\n") {
        return Err(other("reply line too long or not terminated".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| other("reply line is not UTF-8".into()))
}

#[cfg(test)]
mod tests;
