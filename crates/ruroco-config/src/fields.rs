//! The documented keys of the three files people edit: `config.toml`, `commands.toml` and
//! `client.toml`. The parsers check keys against these lists (or, where serde checks them,
//! tests hold serde's field list equal to them), and the section-5 man pages are generated
//! from them: a key cannot be accepted without being documented, nor documented without
//! being accepted.

/// One key of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The key as written in the file.
    pub name: &'static str,
    /// Its TOML type, as the man page shows it.
    pub kind: &'static str,
    /// Its default, or `required` / `none`.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// One table of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// How the table is written (`[commands.NAME]`), empty for the top level.
    pub header: &'static str,
    /// What the table is for.
    pub doc: &'static str,
    /// Its keys.
    pub fields: &'static [Field],
}

/// One file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDoc {
    /// The file's name (`config.toml`).
    pub name: &'static str,
    /// One line: what the file is.
    pub summary: &'static str,
    /// Where it lives and who reads it.
    pub description: &'static str,
    /// Its tables.
    pub tables: &'static [Table],
    /// A short, valid example.
    pub example: &'static str,
    /// Related pages, as `name(section)`.
    pub see_also: &'static [&'static str],
}

impl Table {
    /// The names of its keys, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.fields.iter().map(|f| f.name)
    }

    /// `a, b, c`: the keys an error message lists as allowed.
    pub fn allowed(&self) -> String {
        self.names().collect::<Vec<_>>().join(", ")
    }

    /// Whether `key` is one of its keys.
    pub fn knows(&self, key: &str) -> bool {
        self.names().any(|n| n == key)
    }
}

const fn field(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    doc: &'static str,
) -> Field {
    Field {
        name,
        kind,
        default,
        doc,
    }
}

/// The top level of `config.toml` (the fields of [`crate::Config`]).
pub const CONFIG_KEYS: Table = Table {
    header: "",
    doc: "Read by both daemons; each uses its own keys. A key neither knows is an error naming it.",
    fields: &[
        field("ips", "array of IP addresses", "required (server)", "This server's public addresses. A datagram whose destination address is not one of them is always refused (dst_ip); permissive relaxes only the source check (src_ip), never this one."),
        field("address", "string", "none", "UDP address to bind (\"[::]:80\" style) when neither --address, RUROCO_LISTEN_ADDRESS nor socket activation gives one."),
        field("config_dir", "path", "/etc/ruroco", "Directory of the *.key files (one per client, mode 0640, group ruroco); also of the replay floors and the commander socket unless set below."),
        field("blocklist_dir", "path", "config_dir", "Directory of the replay floors (floors.bin), written by the server."),
        field("socket_dir", "path", "config_dir", "Directory of the commander socket (ruroco.socket). Must be owned by root (or the commander's user) and not writable by others."),
        field("state_dir", "path", "/var/lib/ruroco-commander", "The commander's state directory: pending undos and the token that finds processes left by a killed commander."),
        field("max_requests_per_second", "integer", "2", "Authenticated datagrams per second from one source address; more are refused (rate). 1 to 100000: 0 is refused, and a larger value is lowered to 100000 with a warning."),
        field("max_requests_per_second_global", "integer", "100", "Authenticated datagrams per second from all sources together; more are refused (rate). 1 to 100000: 0 is refused, and a larger value is lowered to 100000 with a warning."),
        field("max_clock_skew_seconds", "integer", "3600", "How far ahead of the server clock a datagram's counter may be; further ahead is refused (future)."),
        field("socket_user", "string", "ruroco", "Owner of the commander socket (the server's user); empty leaves it unchanged."),
        field("socket_group", "string", "ruroco", "Group of the commander socket; empty leaves it unchanged."),
        field("allow_non_routable_ips", "boolean", "false (true where [commands] is in config.toml, as the released ruroco did)", "Whether the commander runs commands for loopback, private and other non-routable client addresses."),
        field("accept_v0", "boolean", "true", "Whether the server accepts the 93-byte format of released ruroco 0.14.x clients besides protocol v1."),
        field("kernel_filter", "boolean", "true", "Whether the server attaches a socket filter that drops, in the kernel, every datagram of a wrong length or an unknown key id."),
        field("metrics_dir", "path", "none", "Where each daemon writes its Prometheus textfile (ruroco-server.prom, ruroco-commander.prom); off when absent. Where ruroco-server.prom is a link (root's, into /var/lib/ruroco-metrics), the server writes the file it points to; --check fails when the server's user cannot write its file."),
        field("floor_store", "string", "\"file\"", "Where replay floors are kept: \"file\" (floors.bin in blocklist_dir), or a Redis store shared by several servers behind one address: redis://host:port/db, redis+unix:///path/to/redis.sock?db=N (a Unix socket), or redis-sentinel://host:port,host:port/master-name[/db] (Sentinel; floor_store_min_replicas for WAIT)."),
        field("floor_store_password_file", "path", "none", "File holding the Redis password (never in the URL)."),
        field("floor_store_user", "string", "none", "Redis ACL user to authenticate as, with the password of the file."),
        field("floor_store_min_replicas", "integer", "0", "Replicas that must hold a batch's floors (Redis WAIT) before any of it runs."),
        field("floor_store_timeout_ms", "integer", "200", "How long a Redis round trip may take before the batch is refused."),
        field("log_format", "string", "\"text\"", "The form of both daemons' log lines: \"text\" (under systemd, native journal entries with fields such as REASON, SRC_IP, KEY, COMMAND, OUTCOME) or \"json\" (one object per line with every field, for log shippers). --log-format wins over it."),
        field("key_commands", "table: key name = array of command names", "none", "Per-key allow-lists: laptop = [\"open_ssh\"] lets laptop.key run only open_ssh. Keys not listed may run anything."),
        field("ntp", "any", "none", "Released 0.14.x only: ignored with a warning; the system clock is used."),
        field("commands", "table", "none", "Released 0.14.x layout: the commands, used by the commander only when there is no commands.toml (a warning says so)."),
    ],
};

/// `config.toml`.
pub const CONFIG_TOML: FileDoc = FileDoc {
    name: "config.toml",
    summary: "settings of ruroco-server and ruroco-commander",
    description: "/etc/ruroco/config.toml (another path with --config) is read by both daemons at start, at every reload (SIGHUP, systemctl reload) and by --check. Unknown keys are errors that name the key and the line.",
    tables: &[CONFIG_KEYS],
    example: "ips = [\"203.0.113.10\", \"2001:db8::10\"]\naddress = \"[::]:80\"\nmax_requests_per_second = 2\n\n[key_commands]\nlaptop = [\"open_ssh\"]\n",
    see_also: &["ruroco-server(1)", "ruroco-commander(1)", "commands.toml(5)", "client.toml(5)"],
};

/// One entry of `[commands]` in its table form.
pub const COMMAND_KEYS: Table = Table {
    header: "[commands.NAME]",
    doc: "One command a client may ask for by NAME. The short form NAME = \"shell line\" is cmd alone. Commands run as sh -c with RUROCO_IP (the client's address) in the environment (RUROCO_COMMAND is set for hooks only).",
    fields: &[
        field("cmd", "string", "required", "The shell line to run."),
        field("timeout_sec", "integer", "30", "Seconds after which the command's process group is killed."),
        field("undo", "string", "none", "A shell line run undo_after_sec after a successful run, for the same RUROCO_IP; a new run moves it. Runs of such a command for one RUROCO_IP take turns, never overlapping each other or the undo. Kept in state_dir across restarts."),
        field("undo_after_sec", "integer", "none", "When undo runs, in seconds after the command succeeded; needed with undo."),
        field("cooldown_sec", "integer", "none", "The same client address may start this command at most once in this many seconds (reason=cooldown)."),
        field("single_flight", "boolean", "false", "While the command runs, further requests for it are refused, not queued (reason=single_flight)."),
    ],
};

/// `[hooks]` of `commands.toml`.
pub const HOOK_KEYS: Table = Table {
    header: "[hooks]",
    doc: "Shell lines run after events, with RUROCO_EVENT, RUROCO_COMMAND, RUROCO_IP, RUROCO_EXIT and RUROCO_DURATION_MS set. A hook never delays a command; at most 8 run at once.",
    fields: &[
        field("on_success", "string", "none", "After a command exited 0."),
        field("on_failure", "string", "none", "After a command exited non-zero or could not start."),
        field("on_timeout", "string", "none", "After a command was killed at its timeout."),
        field("on_refused", "string", "none", "After a request was refused (RUROCO_REASON: cooldown, single_flight, busy, non_routable)."),
        field("on_undo", "string", "none", "After an undo ran, whatever its result."),
        field("timeout_sec", "integer", "10", "Seconds after which a hook's process group is killed."),
    ],
};

/// `commands.toml`.
pub const COMMANDS_TOML: FileDoc = FileDoc {
    name: "commands.toml",
    summary: "the commands ruroco-commander runs",
    description: "/etc/ruroco/commands.toml (next to config.toml, or --commands PATH) is read by ruroco-commander at start, at every reload and by --check. It is root's file, mode 0600: what it holds runs as root. Only [commands] and [hooks] are allowed at the top level.",
    tables: &[COMMAND_KEYS, HOOK_KEYS],
    example: "[commands]\nrestart_nginx = \"systemctl restart nginx\"\n\n[commands.open_ssh]\ncmd = \"ufw allow from $RUROCO_IP to any port 22 proto tcp\"\nundo = \"ufw delete allow from $RUROCO_IP to any port 22 proto tcp\"\nundo_after_sec = 3600\ncooldown_sec = 5\n\n[hooks]\non_failure = \"logger -t ruroco \\\"$RUROCO_COMMAND failed for $RUROCO_IP\\\"\"\n",
    see_also: &["ruroco-commander(1)", "config.toml(5)"],
};

/// One entry of `[servers]` in `client.toml`.
pub const SERVER_KEYS: Table = Table {
    header: "[servers.NAME]",
    doc: "One saved server; `ruroco-client send NAME` uses it, and flags given to send override its values.",
    fields: &[
        field("address", "string", "required", "HOST or HOST:PORT of the server (UDP port 80 unless given; [v6]:port for IPv6)."),
        field("key", "path", "required", "The key file, relative to the config directory unless absolute."),
        field("command", "string", "none", "The command sent when send has no -c."),
        field("groups", "array of strings", "[]", "Groups the server belongs to: send @GROUP sends to each."),
        field("ip", "string", "none", "The client address to claim in the datagram (the address the server should act on)."),
        field("permissive", "boolean", "false", "Let the server act on the claimed ip even when the datagram comes from another address."),
        field("ipv4", "boolean", "false", "Resolve and send over IPv4 only."),
        field("ipv6", "boolean", "false", "Resolve and send over IPv6 only."),
        field("wire", "string", "\"v1\"", "\"v0\" for a server running released ruroco 0.14.x, \"v1\" otherwise."),
        field("send_delay_ms", "integer", "none", "Pause between the IPv4 and the IPv6 datagram when the server has both, in milliseconds (default 50)."),
        field("wait_port", "integer", "none", "Knock, then know: after each send to this server, try this TCP port (as send --wait-port does; the desktop app too) and say whether it opened."),
    ],
};

/// `client.toml`.
pub const CLIENT_TOML: FileDoc = FileDoc {
    name: "client.toml",
    summary: "the saved servers of ruroco-client",
    description: "~/.config/ruroco/client.toml (the directory is RUROCO_CONF_DIR when set) is written by ruroco-client add and import and read by every command that names a saved server. An entry with an error is reported with its line and the others stay usable.",
    tables: &[SERVER_KEYS],
    example: "[servers.web1]\naddress = \"web1.example.com\"\nkey = \"web1.key\"\ncommand = \"open_ssh\"\ngroups = [\"prod\"]\n",
    see_also: &["ruroco-client(1)", "ruroco-client-send(1)", "ruroco-client-add(1)", "config.toml(5)"],
};

/// All three files, for the man page generator.
pub const FILES: [FileDoc; 3] = [CONFIG_TOML, COMMANDS_TOML, CLIENT_TOML];

/// The field names a serde-derived struct accepts, in declaration order: what
/// `deny_unknown_fields` checks against. Tests hold the documented tables equal to it.
///
/// Written here (rather than taken from a crate) because it is a dozen lines: a
/// deserializer that records the `fields` serde's derive passes to `deserialize_struct`
/// and then fails, so nothing is ever built.
pub fn serde_fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Probe(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field list read")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Probe {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_toml_documents_exactly_the_keys_the_parser_accepts() {
        let parsed: Vec<&str> = serde_fields::<crate::Config>().to_vec();
        let documented: Vec<&str> = CONFIG_KEYS.names().collect();
        assert!(!parsed.is_empty());
        assert_eq!(parsed, documented);
    }

    #[test]
    fn the_example_of_config_toml_loads() {
        let config = crate::Config::parse(CONFIG_TOML.example, std::path::Path::new("c.toml"));
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn serde_fields_of_a_non_struct_is_empty() {
        assert!(serde_fields::<u32>().is_empty());
        assert!(serde_fields::<Vec<String>>().is_empty());
    }

    #[test]
    fn every_key_is_documented_once_with_a_type_and_a_default() {
        for file in FILES {
            assert!(!file.example.is_empty() && !file.summary.is_empty());
            for table in file.tables {
                let mut names: Vec<&str> = table.names().collect();
                let count = names.len();
                names.sort_unstable();
                names.dedup();
                assert_eq!(
                    names.len(),
                    count,
                    "{} {} repeats a key",
                    file.name,
                    table.header
                );
                for f in table.fields {
                    assert!(
                        !f.doc.is_empty() && !f.kind.is_empty() && !f.default.is_empty(),
                        "{}",
                        f.name
                    );
                }
            }
        }
    }
}
