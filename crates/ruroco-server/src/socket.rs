//! Which UDP socket the server listens on.
//!
//! Resolution order: explicit `--address` > `RUROCO_LISTEN_ADDRESS` > systemd socket
//! activation (`LISTEN_PID` = own pid and `LISTEN_FDS` = 1 → adopt fd 3) > `address` from
//! `config.toml` > fallback bind `[::]:DEFAULT_PORT`.

use std::net::UdpSocket;

use anyhow::{bail, Context};

/// Port of the fallback bind.
///
/// Derived from the alphabet indices of the letters of "ruroco" (r=18, u=21, o=15, c=3)
/// multiplied together and doubled: 18 * 21 * 15 * 3 * 2 = 34020.
pub(crate) const DEFAULT_PORT: u16 = 34020;

/// Where the socket comes from, decided from the arguments and environment alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SocketSource {
    /// Bind this address; `origin` says where it was configured.
    Bind {
        /// The address to bind.
        address: String,
        /// Where the address came from, for error messages.
        origin: &'static str,
    },
    /// Adopt fd 3, passed by systemd.
    Activation,
}

/// The environment variables the choice depends on.
#[derive(Debug, Default, Clone)]
pub(crate) struct SocketEnv {
    pub(crate) listen_pid: Option<String>,
    pub(crate) listen_fds: Option<String>,
    pub(crate) listen_address: Option<String>,
}

impl SocketEnv {
    pub(crate) fn from_process() -> Self {
        Self {
            listen_pid: std::env::var("LISTEN_PID").ok(),
            listen_fds: std::env::var("LISTEN_FDS").ok(),
            listen_address: std::env::var("RUROCO_LISTEN_ADDRESS").ok(),
        }
    }
}

/// Picks the socket source; the two activation misconfigurations are errors.
pub(crate) fn resolve(
    argument: Option<String>,
    env: SocketEnv,
    own_pid: u32,
    config_address: Option<String>,
) -> anyhow::Result<SocketSource> {
    let own_pid = own_pid.to_string();
    Ok(
        match (env.listen_pid, env.listen_fds, env.listen_address, argument) {
            (_, _, _, Some(address)) => SocketSource::Bind {
                address,
                origin: "--address",
            },
            (_, _, Some(address), None) => SocketSource::Bind {
                address,
                origin: "RUROCO_LISTEN_ADDRESS",
            },
            (Some(pid), Some(fds), None, None) if pid == own_pid && fds == "1" => {
                SocketSource::Activation
            }
            (Some(_), Some(fds), None, None) if fds != "1" => {
                bail!("LISTEN_FDS was set to {fds}, expected 1")
            }
            (Some(pid), Some(_), None, None) if pid != own_pid => {
                bail!("LISTEN_PID ({pid}) does not match current PID")
            }
            _ => match config_address {
                Some(address) => SocketSource::Bind {
                    address,
                    origin: "config address",
                },
                None => SocketSource::Bind {
                    address: format!("[::]:{DEFAULT_PORT}"),
                    origin: "default",
                },
            },
        },
    )
}

/// For `--check`: whether the address of `source` can be bound (parsed and, for a name,
/// resolved), without binding it.
pub(crate) fn check(source: &SocketSource) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    if let SocketSource::Bind { address, origin } = source {
        let mut addrs = address
            .as_str()
            .to_socket_addrs()
            .with_context(|| format!("cannot use `{address}` (from {origin}) as a UDP address"))?;
        if addrs.next().is_none() {
            bail!("`{address}` (from {origin}) resolves to no address");
        }
    }
    Ok(())
}

/// Receive buffer asked for, so bursts are absorbed instead of dropped by the kernel.
/// The kernel caps it at `net.core.rmem_max` for unprivileged processes; under systemd,
/// `ReceiveBuffer=` in ruroco.socket sets it without that cap.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Binds or adopts the socket `source` names.
pub(crate) fn open(source: &SocketSource) -> anyhow::Result<UdpSocket> {
    let socket = match source {
        SocketSource::Bind { address, origin } => UdpSocket::bind(address.as_str())
            .with_context(|| format!("cannot bind UDP socket to {address} (from {origin})"))?,
        SocketSource::Activation => crate::activation::adopt_fd3()?,
    };
    grow_receive_buffer(&socket);
    Ok(socket)
}

/// Raises the receive buffer towards [`RECEIVE_BUFFER`]; never shrinks one set larger
/// (by systemd, say). Best effort: a small buffer only costs datagrams under bursts.
fn grow_receive_buffer(socket: &UdpSocket) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt::RcvBuf};
    // Linux reports twice the requested size (bookkeeping overhead included).
    let current = getsockopt(socket, RcvBuf).unwrap_or(0) / 2;
    if current < RECEIVE_BUFFER {
        if let Err(e) = setsockopt(socket, RcvBuf, &RECEIVE_BUFFER) {
            tracing::debug!("cannot raise the receive buffer: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pid: Option<&str>, fds: Option<&str>, addr: Option<&str>) -> SocketEnv {
        SocketEnv {
            listen_pid: pid.map(str::to_owned),
            listen_fds: fds.map(str::to_owned),
            listen_address: addr.map(str::to_owned),
        }
    }

    fn bind(address: &str, origin: &'static str) -> SocketSource {
        SocketSource::Bind {
            address: address.to_owned(),
            origin,
        }
    }

    #[test]
    fn default_port_derivation() {
        assert_eq!(DEFAULT_PORT, 18 * 21 * 15 * 3 * 2);
    }

    #[test]
    fn argument_wins_over_everything() {
        let got = resolve(
            Some("127.0.0.1:1".into()),
            env(Some("7"), Some("1"), Some("127.0.0.1:2")),
            7,
            Some("x".into()),
        );
        assert_eq!(got.unwrap(), bind("127.0.0.1:1", "--address"));
    }

    #[test]
    fn env_wins_over_activation_and_config() {
        let got = resolve(
            None,
            env(Some("7"), Some("1"), Some("127.0.0.1:2")),
            7,
            Some("x".into()),
        );
        assert_eq!(got.unwrap(), bind("127.0.0.1:2", "RUROCO_LISTEN_ADDRESS"));
    }

    #[test]
    fn activation_wins_over_config() {
        let got = resolve(None, env(Some("7"), Some("1"), None), 7, Some("x".into()));
        assert_eq!(got.unwrap(), SocketSource::Activation);
    }

    #[test]
    fn misconfigured_activation_texts() {
        let err = resolve(None, env(Some("7"), Some("2"), None), 7, None).unwrap_err();
        assert_eq!(err.to_string(), "LISTEN_FDS was set to 2, expected 1");
        let err = resolve(None, env(Some("8"), Some("1"), None), 7, None).unwrap_err();
        assert_eq!(err.to_string(), "LISTEN_PID (8) does not match current PID");
    }

    #[test]
    fn config_then_fallback() {
        assert_eq!(
            resolve(None, env(None, None, None), 7, Some("1.2.3.4:5".into())).unwrap(),
            bind("1.2.3.4:5", "config address")
        );
        assert_eq!(
            resolve(None, env(None, None, None), 7, None).unwrap(),
            bind("[::]:34020", "default")
        );
    }
}
