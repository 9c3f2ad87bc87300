use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/x/config.toml"))
}

#[test]
fn defaults() {
    let c = parse("ips = [\"192.0.2.1\"]").unwrap();
    assert_eq!(c.config_dir, Path::new("/etc/ruroco"));
    assert_eq!(c.blocklist_dir(), Path::new("/etc/ruroco"));
    assert_eq!(c.socket_path(), Path::new("/etc/ruroco/ruroco.socket"));
    assert_eq!(c.max_requests_per_second, 2);
    assert_eq!(c.max_requests_per_second_global, 100);
    assert_eq!(c.max_clock_skew_seconds, 3600);
    assert_eq!(c.socket_user, "ruroco");
    assert_eq!(c.socket_group, "ruroco");
    assert_eq!(c.allow_non_routable_ips, None);
}

#[test]
fn every_key_is_known() {
    let c = parse(
        r#"
        ips = ["192.0.2.1", "2001:db8::1"]
        address = "[::]:80"
        config_dir = "/etc/r"
        blocklist_dir = "/var/lib/r"
        socket_dir = "/run/r"
        max_requests_per_second = 5
        max_requests_per_second_global = 50
        max_clock_skew_seconds = 10
        socket_user = ""
        socket_group = "adm"
        allow_non_routable_ips = true
        "#,
    )
    .unwrap();
    assert_eq!(c.blocklist_dir(), Path::new("/var/lib/r"));
    assert_eq!(c.socket_path(), Path::new("/run/r/ruroco.socket"));
    assert_eq!(c.ips.unwrap().len(), 2);
}

#[test]
fn unknown_key_is_named() {
    let err = parse("ips = [\"192.0.2.1\"]\nmax_request_per_second = 3").unwrap_err();
    match &err {
        ConfigError::Parse { message, .. } => {
            assert!(message.contains("max_request_per_second"), "{err}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("/x/config.toml"));
}

#[test]
fn wrong_type_is_a_parse_error_naming_the_key() {
    let err = parse("ips = [\"192.0.2.1\"]\nmax_clock_skew_seconds = \"ten\"").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { message, .. } if message.contains("max_clock_skew_seconds")),
        "{err}"
    );
    let err = parse("ips = [\"not an ip\"]").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { message, .. } if message.contains("ips")),
        "{err}"
    );
}

#[test]
fn missing_ips_is_named_by_the_server_view() {
    let c = parse("").unwrap();
    let err = c.required_ips(Path::new("/x/config.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { key: "ips", .. }));
}

#[test]
fn accept_v0_defaults_to_true() {
    assert!(parse("").unwrap().accept_v0);
    assert!(!parse("accept_v0 = false").unwrap().accept_v0);
}

/// The released 0.14.x layout, written from its field list: commands inside config.toml,
/// an `ntp` key, no blocklist_dir or socket_dir.
const RELEASED_LAYOUT: &str = r#"
ips = ["192.0.2.1"]
ntp = "system"
config_dir = "/etc/ruroco"
socket_user = "ruroco"
socket_group = "ruroco"
max_requests_per_second_global = 500000

[commands]
default = "touch /tmp/ruroco_test/start.test /tmp/ruroco_test/stop.test"
open_ssh = "ufw allow from $RUROCO_IP to any port 22"
"#;

#[test]
fn released_layout_loads_with_warnings() {
    let c = parse(RELEASED_LAYOUT).unwrap();
    let commands = c.commands.as_ref().unwrap();
    assert_eq!(commands.len(), 2);
    assert_eq!(c.max_requests_per_second_global, MAX_RATE_LIMIT);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    let clamp = c
        .warnings
        .iter()
        .find(|w| w.contains("max_requests_per_second_global"))
        .unwrap();
    assert!(
        clamp.contains("500000") && clamp.contains("100000"),
        "{clamp}"
    );
    assert!(c.warnings.iter().any(|w| w.contains("`ntp`")));
}

#[test]
fn current_layout_loads_without_warnings() {
    let c = parse("ips = [\"192.0.2.1\"]\nblocklist_dir = \"/var/lib/ruroco\"\nsocket_dir = \"/run/ruroco\"\n").unwrap();
    assert!(c.warnings.is_empty());
    assert!(c.commands.is_none());
}

#[test]
fn out_of_range_values_are_refused() {
    let err = parse("max_requests_per_second = 0").unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Value {
            key: "max_requests_per_second",
            ..
        }
    ));
    let err = parse("ips = []").unwrap_err();
    assert!(matches!(err, ConfigError::Value { key: "ips", .. }));
}

#[test]
fn unreadable_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/ruroco/config.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/ruroco/config.toml"));
}

#[test]
fn parse_errors_are_one_line_with_position_and_key() {
    let err = parse("ips = [\"192.0.2.1\"]\nmax_clock_skew_seconds = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("line 2, column 26"), "{err}");
    assert!(err.contains("`max_clock_skew_seconds = \"x\"`"), "{err}");
}

#[test]
fn a_released_layout_file_warns_about_keys_the_original_ignored() {
    let text = "ips = [\"192.0.2.1\"]\nmax_request_per_second = 5\nfoo = 1\n[commands]\ndefault = \"true\"\n";
    let c = parse(text).unwrap();
    assert_eq!(c.max_requests_per_second, DEFAULT_MAX_REQUESTS_PER_SECOND);
    let all = c.warnings.join("\n");
    assert!(
        all.contains("key `max_request_per_second` is not one ruroco knows (did you mean `max_requests_per_second`?); ignored"),
        "{all}"
    );
    assert!(
        all.contains("key `foo` is not one ruroco knows; ignored"),
        "{all}"
    );
    // Without [commands] (the current layout) an unknown key is still an error.
    let err = parse("ips = [\"192.0.2.1\"]\nmax_request_per_second = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_request_per_second"), "{err}");
}

#[test]
fn close_spots_one_edit() {
    assert!(close("max_requests_per_second", "max_request_per_second"));
    assert!(close("socket_user", "socket_usr"));
    assert!(close("ips", "ipz"));
    assert!(!close("ips", "address"));
    assert!(!close("socket_user", "socket_group"));
}

/// The reference (config.toml(5), from `fields`) states the limits the parser enforces.
#[test]
fn the_reference_states_the_rate_limits_the_parser_enforces() {
    for key in ["max_requests_per_second", "max_requests_per_second_global"] {
        let doc = fields::CONFIG_KEYS
            .fields
            .iter()
            .find(|f| f.name == key)
            .unwrap()
            .doc;
        assert!(
            doc.contains(&format!("1 to {MAX_RATE_LIMIT}")) && doc.contains("0 is refused"),
            "{key}: {doc}"
        );
        assert!(!doc.contains("no limit"), "{key}: {doc}");
        assert!(parse(&format!("{key} = 0")).is_err());
        let c = parse(&format!("{key} = {}", MAX_RATE_LIMIT + 1)).unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains(&format!("using {MAX_RATE_LIMIT}"))),
            "{:?}",
            c.warnings
        );
    }
    // A security statement: permissive never relaxes the destination check.
    let ips = fields::CONFIG_KEYS
        .fields
        .iter()
        .find(|f| f.name == "ips")
        .unwrap()
        .doc;
    assert!(
        ips.contains("always refused") && !ips.contains("unless"),
        "{ips}"
    );
}

#[test]
fn a_shared_store_with_a_long_skew_is_warned_about() {
    let store = "floor_store = \"redis://127.0.0.1/0\"\n";
    let warned = |text: &str| {
        parse(text)
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("`max_clock_skew_seconds` = ") && w.contains("the fence"))
    };
    assert!(warned(&format!("ips = [\"127.0.0.1\"]\n{store}")));
    assert!(!warned(&format!(
        "ips = [\"127.0.0.1\"]\n{store}max_clock_skew_seconds = {FENCE_WARN_SECONDS}\n"
    )));
    assert!(!warned("ips = [\"127.0.0.1\"]\n"));
}
