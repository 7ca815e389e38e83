//! Hints for a job file that almost worked: the key that was meant (by edit distance),
//! and a word on files written for Python's Supervisor.

/// The edit distance between two words: insertions, deletions, substitutions and swaps
/// of neighbours each cost 1 (optimal string alignment), so `stop_timout` is 1 from
/// `stop_timeout` and `retsart` 1 from `restart`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be what was meant: at most
/// a third of the word's length away (and at least 1), ties going to the first listed.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" made shorter when one of the
/// expected keys is clearly what was meant: "unknown field `x`: did you mean `a`?".
/// Other messages come back unchanged.
pub fn unknown_field(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((word, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match closest(word, &candidates) {
        Some(meant) => format!("unknown field `{word}`: did you mean `{meant}`?"),
        None => message.to_owned(),
    }
}

/// Whether `text` looks like a Supervisor INI file rather than a TOML job file: a line
/// that opens a `[program:x]`, `[group:x]` or `[supervisord]` section. The 0-based byte
/// offset of that line.
pub fn supervisor_section(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("[program:")
            || t.starts_with("[group:")
            || t.starts_with("[supervisord]")
            || t.starts_with("[eventlistener:")
        {
            return Some(offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("stop_timeout", "stop_timeout"), 0);
        assert_eq!(edit_distance("stop_timout", "stop_timeout"), 1);
        assert_eq!(edit_distance("retsart", "restart"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_only_when_close() {
        let keys = [
            "command",
            "restart",
            "stop_timeout",
            "stop_signal",
            "log_dir",
        ];
        assert_eq!(closest("stop_timout", &keys), Some("stop_timeout"));
        assert_eq!(closest("comand", &keys), Some("command"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(closest("x", &keys), None);
    }

    #[test]
    fn unknown_field_messages() {
        assert_eq!(
            unknown_field("unknown field `stop_timout`, expected one of `command`, `stop_timeout`"),
            "unknown field `stop_timout`: did you mean `stop_timeout`?"
        );
        let far = "unknown field `colour`, expected one of `command`, `stop_timeout`";
        assert_eq!(unknown_field(far), far);
        assert_eq!(unknown_field("invalid type"), "invalid type");
    }

    #[test]
    fn supervisor_files_are_recognised() {
        assert_eq!(
            supervisor_section("; c\n[program:web]\ncommand=x\n"),
            Some(4)
        );
        assert_eq!(supervisor_section("[job.a]\ncommand = \"x\"\n"), None);
    }
}
