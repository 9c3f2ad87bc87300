//! `cargo run --release -p ruroco-bench -- [SECTION…] [--repeat N]`: ruroco's own
//! benchmark. It builds the release binaries, runs them on loopback and prints each figure
//! side by side with the floor any program pays and, when installed, fwknop measured in the
//! same run. Every figure is the median of `--repeat` runs; every load loop is bounded in
//! count and time. This is not a test: it asserts nothing, it prints numbers.
#![forbid(unsafe_code)]

mod binaries;
mod client_send;
mod commands;
mod fwknopd;
mod gui;
mod keys;
mod machine;
mod procfs;
mod report;
mod server_load;
mod stack;
mod stats;
mod store;
mod traffic;

use clap::{Parser, ValueEnum};

/// ruroco's side-by-side benchmark.
#[derive(Parser)]
#[command(name = "ruroco-bench")]
struct Args {
    /// Sections to run; all when none is named.
    #[arg(value_enum)]
    sections: Vec<Section>,
    /// Runs per figure; the figure printed is their median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    repeat: u16,
}

/// One part of the benchmark.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    /// Wall time of one `ruroco-client send` (hyperfine).
    Client,
    /// Junk: whole-machine CPU per datagram with and without the kernel filter, junk
    /// reaching the server, valid commands during a flood, RSS.
    Server,
    /// Burst commands per second and datagram-to-command latency.
    Commands,
    /// Only the burst figure.
    Burst,
    /// Accepted datagrams per second with the file and the Redis floor store.
    Store,
    /// The desktop app under Xvfb: time to its window, memory, CPU while idle and with a
    /// blinking cursor, click to command, binary size.
    Gui,
    /// 1 to 100,000 keys: start, memory, reload, a knock during the reload.
    Keys,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let all = args.sections.is_empty();
    let wants = |s: Section| all || args.sections.contains(&s);
    let bins = binaries::Binaries::build()?;
    let repeat = usize::from(args.repeat);
    let mut report = report::Report::default();
    println!("ruroco benchmark: median of {repeat} runs per figure, loopback only");
    if wants(Section::Server) {
        server_load::measure(&bins, repeat, &mut report)?;
    }
    if wants(Section::Commands) {
        commands::measure(&bins, repeat, &mut report, true)?;
    } else if args.sections.contains(&Section::Burst) {
        commands::measure(&bins, repeat, &mut report, false)?;
    }
    if wants(Section::Store) {
        store::measure(&bins, repeat, &mut report)?;
    }
    if wants(Section::Keys) {
        keys::measure(&bins, repeat, &mut report)?;
    }
    if wants(Section::Client) {
        client_send::measure(&bins, repeat, &mut report)?;
    }
    if wants(Section::Gui) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(std::path::Path::new("."));
        gui::measure(root, &bins, repeat, &mut report)?;
    }
    println!("\n{}", report.table());
    Ok(())
}
