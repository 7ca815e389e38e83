//! Supervisor's `supervisorctl` words, answered with supctl's: someone who types
//! `supctl tail web` is told about `supctl logs`. (Near-misses of supctl's own commands,
//! like `stauts`, get clap's suggestion.)

/// supervisorctl commands whose supctl name differs, with that name.
const SUPERVISOR_WORDS: &[(&str, &str)] = &[
    ("tail", "logs"),
    ("maintail", "logs"),
    ("update", "reload"),
    ("reread", "reload"),
    ("avail", "status"),
    ("pid", "status"),
    ("signal", "kill"),
];

/// The supctl command for a supervisorctl word, if there is one.
pub fn supervisor_word(word: &str) -> Option<&'static str> {
    SUPERVISOR_WORDS
        .iter()
        .find(|(theirs, _)| *theirs == word)
        .map(|(_, ours)| *ours)
}

/// If clap rejected an unknown subcommand that is one of Supervisor's words, the line
/// to print instead of clap's.
pub fn for_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    supervisor_word(word).map(|ours| {
        format!("supctl: unknown command `{word}` (a supervisorctl word): did you mean `supctl {ours}`?")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisorctl_words_map_to_supctl_commands() {
        assert_eq!(supervisor_word("tail"), Some("logs"));
        assert_eq!(supervisor_word("update"), Some("reload"));
        assert_eq!(supervisor_word("avail"), Some("status"));
        assert_eq!(supervisor_word("status"), None);
    }
}
