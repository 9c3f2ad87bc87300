//! Where an entry of a TOML file is, for messages: `toml`'s table API keeps no positions
//! once a value has been taken apart, so the text is searched the way a person would.

/// The line (1-based) of `field` inside entry `name` of table `table` — written either as
/// a `[table.name]` section or as `name = { … }` inside `[table]` — or of the entry itself
/// when the field is not there (a missing field). `None` when the entry is not found.
pub fn line_of(text: &str, table: &str, name: &str, field: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let headers = [format!("[{table}.{name}]"), format!("[{table}.\"{name}\"]")];
    let assigns = |l: &str, key: &str| {
        l.strip_prefix(key)
            .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    // A section of its own: the field is on one of the following lines.
    if let Some(start) = lines
        .iter()
        .position(|l| headers.iter().any(|h| l.trim().starts_with(h.as_str())))
    {
        if let Some(field) = field {
            for (i, line) in lines.iter().enumerate().skip(start + 1) {
                let l = line.trim_start();
                if l.starts_with('[') {
                    break;
                }
                if assigns(l, field) {
                    return Some(i + 1);
                }
            }
        }
        return Some(start + 1);
    }
    // An inline entry inside `[table]`.
    let section = lines
        .iter()
        .position(|l| l.trim() == format!("[{table}]"))?;
    for (i, line) in lines.iter().enumerate().skip(section + 1) {
        let l = line.trim_start();
        if l.starts_with('[') {
            break;
        }
        if assigns(l, name) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn finds_sections_inline_entries_and_fields() {
        let text = "[commands]\na = \"x\"\nb = { cmd = \"y\", undo_afer_sec = 3 }\n\n[commands.c]\ncmd = \"z\"\ntimeout_sec = 0\n";
        assert_eq!(line_of(text, "commands", "a", None), Some(2));
        assert_eq!(
            line_of(text, "commands", "b", Some("undo_afer_sec")),
            Some(3)
        );
        assert_eq!(line_of(text, "commands", "c", Some("timeout_sec")), Some(7));
        assert_eq!(line_of(text, "commands", "c", Some("missing")), Some(5));
        assert_eq!(line_of(text, "commands", "nope", None), None);
        assert_eq!(
            line_of("[servers.w]\nkey = 1\n", "servers", "w", Some("key")),
            Some(2)
        );
    }
}
