//! Shell completion scripts for the programs' `completions SHELL` subcommand and the
//! packaged files, from clap's definition of each command line.
//!
//! `clap_complete` writes them; one correction is made by hand to its bash output. For a
//! program whose name has a `-` in it, its bash script names the subcommands' branches
//! `ruroco__subcmd__client__subcmd__send` where the dispatch looks for
//! `ruroco__client__subcmd__send`, so no subcommand's flags would ever complete. The
//! correction renames the branches to what the dispatch looks for; a test completes a
//! subcommand's flags in a real bash.

use std::io::Write;

pub use clap_complete::Shell;

/// Writes the completion script of `cmd` for `shell` to `out`.
pub fn write_completions(
    shell: Shell,
    cmd: &mut clap::Command,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, cmd, &name, &mut script);
    if shell == Shell::Bash && name.contains('-') {
        let text = String::from_utf8_lossy(&script);
        let wrong = name.replace('-', "__subcmd__");
        let right = name.replace('-', "__");
        script = text.replace(&wrong, &right).into_bytes();
    }
    out.write_all(&script)
}

/// The file name a shell's completion directory expects for `name`.
pub fn completion_file_name(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash => format!("{name}.bash"),
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        Shell::Elvish => format!("{name}.elv"),
        Shell::PowerShell => format!("_{name}.ps1"),
        _ => name.to_owned(),
    }
}
