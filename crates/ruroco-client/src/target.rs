//! Where the datagrams go: `HOST[:PORT]` resolved to at most one address per family.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

/// Port used when the address names none.
pub(crate) const DEFAULT_PORT: u16 = 80;

/// Which address families to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Both,
    V4,
    V6,
}

/// Splits `HOST[:PORT]`: `host`, `host:port`, `1.2.3.4:5`, `[::1]:5`, `::1`.
pub(crate) fn split_host_port(address: &str) -> anyhow::Result<(String, u16)> {
    let bad = || {
        format!(
            "invalid address `{address}`: expected HOST[:PORT], with [IPv6]:PORT for an IPv6 port"
        )
    };
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').with_context(bad)?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .with_context(bad)?,
        };
        return Ok((host.to_owned(), port));
    }
    if address.parse::<IpAddr>().is_ok() {
        return Ok((address.to_owned(), DEFAULT_PORT));
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Ok((host.to_owned(), port.parse().ok().with_context(bad)?))
        }
        Some(_) => bail!(bad()),
        None if address.is_empty() => bail!(bad()),
        None => Ok((address.to_owned(), DEFAULT_PORT)),
    }
}

/// Resolves `address` to the first address of each wanted family.
pub(crate) fn resolve(address: &str, family: Family) -> anyhow::Result<Vec<SocketAddr>> {
    let (host, port) = split_host_port(address)?;
    let all: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .collect();
    let v4 = all.iter().find(|a| a.is_ipv4()).copied();
    let v6 = all.iter().find(|a| a.is_ipv6()).copied();
    let chosen: Vec<SocketAddr> = match family {
        Family::Both => v4.into_iter().chain(v6).collect(),
        Family::V4 => v4.into_iter().collect(),
        Family::V6 => v6.into_iter().collect(),
    };
    if chosen.is_empty() {
        let which = match family {
            Family::Both => "",
            Family::V4 => "IPv4 ",
            Family::V6 => "IPv6 ",
        };
        bail!("`{host}` has no {which}address");
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let ok = |s: &str| split_host_port(s).unwrap();
        assert_eq!(ok("example.com"), ("example.com".into(), 80));
        assert_eq!(ok("example.com:34020"), ("example.com".into(), 34020));
        assert_eq!(ok("192.0.2.1:9"), ("192.0.2.1".into(), 9));
        assert_eq!(ok("[2001:db8::1]:9"), ("2001:db8::1".into(), 9));
        assert_eq!(ok("[2001:db8::1]"), ("2001:db8::1".into(), 80));
        assert_eq!(ok("2001:db8::1"), ("2001:db8::1".into(), 80));
        for bad in ["", "host:", "host:99999", "[::1", "[::1]x", "a:b:c"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn family_filtering() {
        assert_eq!(
            resolve("127.0.0.1:5", Family::Both).unwrap(),
            vec!["127.0.0.1:5".parse().unwrap()]
        );
        let err = resolve("127.0.0.1:5", Family::V6).unwrap_err().to_string();
        assert!(err.contains("`127.0.0.1` has no IPv6 address"), "{err}");
        assert!(resolve("[::1]:5", Family::V4).is_err());
    }
}
