//! Readers of single `commands.toml` values, shared by the command entries
//! (`commands.rs`) and the hooks (`hooks.rs`), so that neither imports the other's
//! internals: commands → hooks → values.

use std::time::Duration;

/// A positive number of seconds from a TOML value, or what is wrong with it.
pub(crate) fn seconds(key: &str, value: toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::Integer(n) if n > 0 => Ok(Duration::from_secs(n.unsigned_abs())),
        _ => Err(format!("`{key}` must be a positive integer (seconds)")),
    }
}

/// A non-empty shell command from a TOML value, or what is wrong with it.
pub(crate) fn shell(key: &str, value: toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(cmd) if !cmd.trim().is_empty() => Ok(cmd),
        toml::Value::String(_) => Err(format!("`{key}` is empty")),
        _ => Err(format!("`{key}` must be a string")),
    }
}
