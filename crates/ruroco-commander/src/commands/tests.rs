//! Unit tests of the parent module.

use super::*;

fn parse(text: &str) -> Result<Commands, CommandsError> {
    Commands::parse(text, Path::new("/c/commands.toml"))
}

#[test]
fn both_forms() {
    let c =
        parse("[commands]\ndefault = \"echo hi\"\nslow = { cmd = \"sleep 1\", timeout_sec = 5 }\n")
            .unwrap();
    assert_eq!(c.len(), 2);
    let d = c.get(command_hash("default")).unwrap();
    assert_eq!((d.cmd.as_str(), d.timeout), ("echo hi", DEFAULT_TIMEOUT));
    let s = c.get(command_hash("slow")).unwrap();
    assert_eq!(
        (s.cmd.as_str(), s.timeout),
        ("sleep 1", Duration::from_secs(5))
    );
}

#[test]
fn undo_cooldown_and_single_flight() {
    let c = parse(
        "[commands.open_ssh]\ncmd = \"open\"\nundo = \"close\"\nundo_after_sec = 3600\ncooldown_sec = 10\nsingle_flight = true\n",
    )
    .unwrap();
    let s = c.get(command_hash("open_ssh")).unwrap();
    assert_eq!(
        s.undo,
        Some(UndoSpec {
            cmd: "close".into(),
            after: Duration::from_secs(3600)
        })
    );
    assert_eq!(s.cooldown, Some(Duration::from_secs(10)));
    assert!(s.single_flight);
    assert!(c.any_undo());
    assert!(!parse("[commands]\na = \"x\"\n").unwrap().any_undo());
}

#[test]
fn the_packaged_example_loads() {
    let text = include_str!("../../../../packaging/config/commands.toml");
    let c = parse(text).unwrap();
    let open = c.get(command_hash("open_ssh")).unwrap();
    assert_eq!(open.undo.as_ref().map(|u| u.after.as_secs()), Some(3600));
    assert!(c.get(command_hash("deploy")).unwrap().single_flight);
    // The commented [hooks] table loads too.
    let hooks: String = text
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .filter(|l| {
                    l.starts_with("on_") || l.starts_with("timeout_sec") || l.starts_with("[hooks]")
                })
                .unwrap_or(l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(parse(&hooks)
        .unwrap()
        .hooks
        .line(crate::hooks::Event::Undo)
        .is_some());
}

#[test]
fn malformed_entries_are_named() {
    for (text, name) in [
        ("[commands]\nbad = 5\n", "bad"),
        ("[commands]\nbad = { timeout_sec = 5 }\n", "bad"),
        (
            "[commands]\nbad = { cmd = \"x\", timeout_sec = 0 }\n",
            "bad",
        ),
        ("[commands]\nbad = { cmd = \"x\", timeout = 3 }\n", "bad"),
        ("[commands]\nbad = \"  \"\n", "bad"),
        ("[commands]\nbad = { cmd = \"x\", undo = \"y\" }\n", "bad"),
        (
            "[commands]\nbad = { cmd = \"x\", undo_after_sec = 5 }\n",
            "bad",
        ),
        (
            "[commands]\nbad = { cmd = \"x\", undo = \"\", undo_after_sec = 5 }\n",
            "bad",
        ),
        (
            "[commands]\nbad = { cmd = \"x\", cooldown_sec = -1 }\n",
            "bad",
        ),
        (
            "[commands]\nbad = { cmd = \"x\", single_flight = 1 }\n",
            "bad",
        ),
    ] {
        match parse(text) {
            Err(CommandsError::Entry {
                name: got, path, ..
            }) => {
                assert_eq!(got, name);
                assert_eq!(path, Path::new("/c/commands.toml"));
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("/c/config.toml")).unwrap()
}

#[test]
fn commands_come_from_one_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    let next_to = dir.path().join("commands.toml");
    let released = config("[commands]\ndefault = \"true\"\n");
    let current = config("");
    // Neither: an error naming both places.
    let err = locate(None, &current, &config_path).unwrap_err();
    assert!(matches!(err, CommandsError::None { .. }), "{err}");
    // Only the [commands] table of config.toml (released layout).
    assert_eq!(
        locate(None, &released, &config_path).unwrap(),
        Source::Config(config_path.clone())
    );
    let c = Commands::load_from(&Source::Config(config_path.clone()), &released).unwrap();
    assert!(c.get(command_hash("default")).is_some());
    // commands.toml next to config.toml wins when the config has no table.
    std::fs::write(&next_to, "[commands]\n").unwrap();
    assert_eq!(
        locate(None, &current, &config_path).unwrap(),
        Source::File(next_to.clone())
    );
    // Both: an error naming both files.
    for explicit in [None, Some(next_to.as_path())] {
        let err = locate(explicit, &released, &config_path).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CommandsError::Both { .. }), "{text}");
        assert!(
            text.contains("commands.toml") && text.contains("config.toml"),
            "{text}"
        );
    }
    // An explicit path is used even before it exists (and then fails to load, naming it).
    let elsewhere = dir.path().join("elsewhere.toml");
    assert_eq!(
        locate(Some(&elsewhere), &current, &config_path).unwrap(),
        Source::File(elsewhere)
    );
}

#[test]
fn malformed_files_are_refused() {
    for text in [
        "[commands\n",
        "x = 1\n[commands]\n",
        "commands = 3\n",
        "",
        "hooks = 1\n[commands]\n",
        "[commands]\n[hooks]\non_sucess = \"x\"\n",
    ] {
        assert!(
            matches!(parse(text), Err(CommandsError::Parse { .. })),
            "{text}"
        );
    }
}

#[test]
fn a_misspelt_key_is_named_with_its_line() {
    let text =
        "[commands]\nok = \"true\"\nopen_ssh = { cmd = \"x\", undo = \"y\", undo_afer_sec = 60 }\n";
    let err = Commands::parse(text, Path::new("/etc/ruroco/commands.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "/etc/ruroco/commands.toml, line 3: entry `open_ssh`: unknown key `undo_afer_sec`"
        ),
        "{err}"
    );
    let text = "[commands]\n\n[commands.deploy]\ncmd = \"x\"\ntimeout_sec = 0\n";
    let err = Commands::parse(text, Path::new("/c.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 5") && err.contains("timeout_sec"),
        "{err}"
    );
}

/// Every key the man page documents for an entry and for `[hooks]` is one the parser takes,
/// and nothing else is.
#[test]
fn every_documented_key_is_accepted() {
    let value = |f: &ruroco_config::fields::Field| match f.kind {
        "integer" => "5",
        "boolean" => "true",
        _ => "\"true\"",
    };
    for f in ruroco_config::fields::COMMAND_KEYS.fields {
        let mut text = "[commands.a]\ncmd = \"true\"\n".to_owned();
        match f.name {
            "cmd" => {}
            "undo" | "undo_after_sec" => text.push_str("undo = \"true\"\nundo_after_sec = 5\n"),
            name => text.push_str(&format!("{name} = {}\n", value(f))),
        }
        assert!(parse(&text).is_ok(), "{}: {:?}", f.name, parse(&text).err());
    }
    for f in ruroco_config::fields::HOOK_KEYS.fields {
        let text = format!(
            "[commands]\na = \"true\"\n[hooks]\n{} = {}\n",
            f.name,
            value(f)
        );
        assert!(parse(&text).is_ok(), "{}: {:?}", f.name, parse(&text).err());
    }
    let example = parse(ruroco_config::fields::COMMANDS_TOML.example).unwrap();
    assert_eq!(example.len(), 2);
    let err = parse("[commands]\na = \"true\"\n[hooks]\non_start = \"x\"\n").unwrap_err();
    assert!(err.to_string().contains("unknown key `on_start`"), "{err}");
    assert!(err.to_string().contains("on_undo, timeout_sec"), "{err}");
}
