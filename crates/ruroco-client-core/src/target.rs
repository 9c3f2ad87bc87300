//! Where the datagrams go: `HOST[:PORT]` resolved to at most one address per family.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

/// Port used when the address names none.
pub const DEFAULT_PORT: u16 = 80;

/// Which address families to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Every address the name resolves to, IPv4 and IPv6.
    Both,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// Splits `HOST[:PORT]`: `host`, `host:port`, `1.2.3.4:5`, `[::1]:5`, `::1`.
pub fn split_host_port(address: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = split(address)?;
    if port == 0 {
        bail!("invalid address `{address}`: port 0 is no port a server listens on (1 to 65535)");
    }
    Ok((host, port))
}

fn split(address: &str) -> anyhow::Result<(String, u16)> {
    let bad = || {
        format!(
            "invalid address `{address}`: expected HOST[:PORT] with a port from 1 to 65535, and [IPv6]:PORT for an IPv6 port"
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

/// Whether `host` is an IP address or a DNS name (letters, digits, `-` inside labels of
/// at most 63 characters, at most 253 in all, an optional final dot): nothing a shell or
/// ssh would read as anything but a host.
pub fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Resolves `address` to the first address of each wanted family.
pub fn resolve(address: &str, family: Family) -> anyhow::Result<Vec<SocketAddr>> {
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

#[cfg(test)]
mod host_tests {
    use super::{split_host_port, valid_host};

    #[test]
    fn hosts_are_names_or_addresses_and_nothing_else() {
        for good in [
            "web1",
            "web1.example.com",
            "example.com.",
            "203.0.113.7",
            "2001:db8::1",
            "xn--bcher-kva.example",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "h;id",
            "a b",
            "$(id)",
            "-oProxyCommand=x",
            "a..b",
            "",
            "web1-.example",
            "`x`",
            "h'x",
            "a/b",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
        assert!(!valid_host(&"a".repeat(64)));
    }

    #[test]
    fn ports_are_1_to_65535_and_the_error_says_port() {
        assert_eq!(split_host_port("h:80").unwrap(), ("h".to_owned(), 80));
        let zero = split_host_port("h:0").unwrap_err().to_string();
        assert!(zero.contains("port 0"), "{zero}");
        let big = split_host_port("h:70000").unwrap_err().to_string();
        assert!(big.contains("port from 1 to 65535"), "{big}");
        assert!(split_host_port("[::1]:0").is_err());
    }
}
