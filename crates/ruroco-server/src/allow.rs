//! Per-key allow-lists, `[key_commands]` in `config.toml`:
//!
//! ```toml
//! [key_commands]
//! laptop = ["open_ssh"]   # laptop.key may only run open_ssh
//! ci = ["deploy"]
//! ```
//!
//! A key file's name without `.key` names the key; a key that is not listed may run
//! anything. The server knows which key authenticated a datagram (the commander does not),
//! so the check is here, after the floor advanced: a refused datagram is authentic, and
//! its replay must still be a replay. Only command-name hashes are kept, as on the wire.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use ruroco_ipc::command_hash;
use ruroco_proto::KeyId;

/// Which commands each listed key may run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AllowList {
    by_key: HashMap<KeyId, HashSet<u64>>,
}

impl AllowList {
    /// Builds the lists from the config table and the loaded keys' names. A name with no
    /// key file is a warning naming it, the file and the keys there are, and is skipped:
    /// a deleted key must stop working at the next reload, not keep the old key set in
    /// force because its list entry stayed behind.
    pub(crate) fn build(
        table: &BTreeMap<String, Vec<String>>,
        names: &HashMap<String, KeyId>,
        config_path: &Path,
    ) -> (Self, Vec<String>) {
        let mut by_key = HashMap::new();
        let mut warnings = Vec::new();
        for (name, commands) in table {
            let Some(id) = names.get(name) else {
                let mut known: Vec<&str> = names.keys().map(String::as_str).collect();
                known.sort_unstable();
                warnings.push(format!(
                    "{}: [key_commands] names key `{name}`, but there is no {name}.key (keys: {}); the entry is ignored",
                    config_path.display(),
                    known.join(", ")
                ));
                continue;
            };
            by_key.insert(*id, commands.iter().map(|c| command_hash(c)).collect());
        }
        (Self { by_key }, warnings)
    }

    /// Whether `key` may run the command with hash `cmd_hash`.
    pub(crate) fn allows(&self, key: KeyId, cmd_hash: u64) -> bool {
        self.by_key
            .get(&key)
            .is_none_or(|allowed| allowed.contains(&cmd_hash))
    }

    /// Keys with a list.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_run_only_their_commands_and_others_anything() {
        let laptop = KeyId([1; 8]);
        let phone = KeyId([2; 8]);
        let names = HashMap::from([("laptop".to_owned(), laptop), ("phone".to_owned(), phone)]);
        let table = BTreeMap::from([("laptop".to_owned(), vec!["open_ssh".to_owned()])]);
        let (list, warnings) = AllowList::build(&table, &names, Path::new("/c/config.toml"));
        assert!(warnings.is_empty());
        assert!(list.allows(laptop, command_hash("open_ssh")));
        assert!(!list.allows(laptop, command_hash("deploy")));
        assert!(list.allows(phone, command_hash("deploy")));
        assert_eq!(list.len(), 1);
        // An empty list allows nothing.
        let table = BTreeMap::from([("phone".to_owned(), vec![])]);
        let (list, _) = AllowList::build(&table, &names, Path::new("/c/config.toml"));
        assert!(!list.allows(phone, command_hash("open_ssh")));
    }

    #[test]
    fn an_entry_without_a_key_is_a_warning_naming_it_and_is_skipped() {
        let names = HashMap::from([("laptop".to_owned(), KeyId([1; 8]))]);
        let table = BTreeMap::from([("lapt0p".to_owned(), vec!["x".to_owned()])]);
        let (list, warnings) = AllowList::build(&table, &names, Path::new("/c/config.toml"));
        assert_eq!(list.len(), 0);
        let [err] = warnings.as_slice() else {
            panic!("{warnings:?}")
        };
        assert!(
            err.contains("lapt0p") && err.contains("/c/config.toml"),
            "{err}"
        );
        assert!(err.contains("laptop"), "{err}");
    }
}
