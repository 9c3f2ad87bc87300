//! Monitoring end to end: both daemons' metrics files after a real round trip, checked by
//! promtool, and the packaged dashboard and alerting rules built on what they contain.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use ruroco_testkit::{metric_value, promtool, tool};

use crate::util::Stack;

/// Every `ruroco_…` metric name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ruroco_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn packaging(rel: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    std::fs::read_to_string(root.join(rel)).unwrap()
}

#[test]
fn both_daemons_write_metrics_the_dashboard_and_alerts_use() {
    let metrics = tempfile::tempdir().unwrap();
    let stack = Stack::start(&format!("metrics_dir = \"{}\"", metrics.path().display()));
    stack.send_ok(&[]);
    stack.expect_runs("default", &["127.0.0.1"]);
    std::thread::sleep(Duration::from_millis(200));
    let Stack {
        server, commander, ..
    } = stack;
    server.stop();
    commander.stop();
    let server = std::fs::read_to_string(metrics.path().join("ruroco-server.prom")).unwrap();
    let commander = std::fs::read_to_string(metrics.path().join("ruroco-commander.prom")).unwrap();
    for text in [&server, &commander] {
        if let Some(complaints) = promtool(text) {
            assert_eq!(complaints, "", "promtool on:\n{text}");
        }
    }
    assert_eq!(metric_value(&server, "ruroco_server_forwards_total"), 1.0);
    assert_eq!(
        metric_value(
            &commander,
            "ruroco_commander_commands_total{command=\"default\",outcome=\"success\"}"
        ),
        1.0
    );

    // The reference page lists exactly the metric families the daemons write.
    let families: BTreeSet<String> = (server.clone() + &commander)
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/reference/logs-and-metrics.md"),
    )
    .unwrap();
    let documented: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `ruroco_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("ruroco_{name}"))
        .collect();
    assert_eq!(
        families, documented,
        "docs/reference/logs-and-metrics.md must list every metric the daemons write"
    );

    // Every series the dashboard and the alerts query exists in the real output.
    let produced = names_in(&(server.clone() + &commander));
    let dashboard = packaging("grafana/ruroco-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    let alerts = packaging("prometheus/ruroco-alerts.yml");
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        let used = names_in(text);
        assert!(used.len() >= 5, "{file} uses {used:?}");
        for name in used {
            assert!(
                produced.contains(&name),
                "{file} queries {name}, which no daemon writes"
            );
        }
    }
    if let Some(promtool) = tool("promtool") {
        let out = Command::new(promtool)
            .args(["check", "rules"])
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../packaging/prometheus/ruroco-alerts.yml"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
