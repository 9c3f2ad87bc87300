//! A small Redis client: RESP2 over one TCP connection, with every wait bounded by a
//! timeout and every reply bounded in size, so a slow or hostile Redis can delay a batch
//! by at most the timeout and never grow memory. Only what the shared floors need: AUTH,
//! SELECT, PING and EVAL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use zeroize::Zeroizing;

/// Longest bulk string accepted in a reply.
const MAX_BULK: usize = 64 * 1024;
/// Most elements accepted in one reply array.
const MAX_ARRAY: usize = 4096;
/// Longest status or error line.
const MAX_LINE: usize = 4096;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Where Redis is, from `redis://host:port/db` (no user or password in it: the password
/// comes from a file, so the URL can be logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) db: u32,
}

impl Endpoint {
    /// Parses a `redis://` URL; the error says what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let rest = match url.split_once("://") {
            Some(("redis", rest)) => rest,
            Some(("rediss", _)) => {
                return Err("TLS (rediss://) is not supported; reach Redis over loopback, a private network or a TLS tunnel".into())
            }
            _ => return Err("expected redis://host:port/db".into()),
        };
        if rest.contains('@') {
            return Err("put no user or password in the URL; name a password file in floor_store_password_file".into());
        }
        let (hostport, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (
                hp,
                db.parse()
                    .map_err(|_| format!("database `{db}` is not a number"))?,
            ),
            None => (rest, 0),
        };
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
            6379
        } else {
            port.parse()
                .map_err(|_| format!("port `{port}` is not a number"))?
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            db,
        })
    }

    fn addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

/// One open connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects, authenticates and selects the database, each step within `timeout`.
    pub(crate) fn open(
        endpoint: &Endpoint,
        password: Option<&Zeroizing<String>>,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for addr in endpoint.addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    stream.set_nodelay(true)?;
                    let mut conn = Self {
                        reader: BufReader::new(stream),
                    };
                    if let Some(password) = password {
                        conn.expect_ok(&[b"AUTH", password.as_bytes()], "AUTH")?;
                    }
                    if endpoint.db != 0 {
                        let db = endpoint.db.to_string();
                        conn.expect_ok(&[b"SELECT", db.as_bytes()], "SELECT")?;
                    }
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn expect_ok(&mut self, args: &[&[u8]], what: &str) -> std::io::Result<()> {
        match self.call(args)? {
            Reply::Status(_) => Ok(()),
            Reply::Error(e) => Err(other(format!("{what} refused: {e}"))),
            r => Err(other(format!("{what}: unexpected reply {r:?}"))),
        }
    }

    /// Sends one command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        read_reply(&mut self.reader, 0)
    }
}

fn other(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// Reads one reply (nested at most two levels), bounded in size.
pub(crate) fn read_reply(r: &mut impl BufRead, depth: u8) -> std::io::Result<Reply> {
    let line = read_line(r)?;
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
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        "*" => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let n = usize::try_from(n).map_err(|_| other("bad length".into()))?;
            if n > MAX_ARRAY || depth >= 2 {
                return Err(other(format!(
                    "array reply of {n} elements is too large or deep"
                )));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_reply(r, depth + 1)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(other(format!("unknown reply type `{kind}`"))),
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
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> std::io::Result<Reply> {
        read_reply(&mut std::io::Cursor::new(bytes), 0)
    }

    #[test]
    fn replies() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Reply::Error("ERR no".into())
        );
        assert_eq!(parse(b":-3\r\n").unwrap(), Reply::Int(-3));
        assert_eq!(
            parse(b"$3\r\nabc\r\n").unwrap(),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n:1\r\n:0\r\n").unwrap(),
            Reply::Array(Some(vec![Reply::Int(1), Reply::Int(0)]))
        );
    }

    #[test]
    fn hostile_replies_are_errors_not_allocations() {
        for bad in [
            &b"$99999999999\r\n"[..],
            b"*99999999\r\n",
            b"*1\r\n*1\r\n*1\r\n:1\r\n",
            b"?x\r\n",
            b"+no end",
            b"",
            b":x\r\n",
            b"$5\r\nab",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long = [b"+".as_slice(), &[b'a'; MAX_LINE + 10], b"\r\n"].concat();
        assert!(parse(&long).is_err());
    }

    #[test]
    fn urls() {
        let e = Endpoint::parse("redis://10.0.0.5:6380/2").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.db), ("10.0.0.5", 6380, 2));
        let e = Endpoint::parse("redis://[::1]:7000").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.db), ("::1", 7000, 0));
        assert_eq!(e.to_string(), "redis://[::1]:7000/0");
        assert_eq!(Endpoint::parse("redis://cache").unwrap().port, 6379);
        for bad in [
            "redis://user:secret@host:6379",
            "rediss://host",
            "http://host",
            "redis://:6379",
            "redis://host:x",
            "redis://host/db",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        let err = Endpoint::parse("redis://u:hunter2@h").unwrap_err();
        assert!(!err.contains("hunter2"));
    }
}
