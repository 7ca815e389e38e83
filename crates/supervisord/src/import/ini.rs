//! Reading Supervisor's INI the way Supervisor does (Python's `configparser` with its
//! settings), its `%(name)s` expansions, and its value syntaxes (booleans, byte sizes,
//! `KEY="val",KEY2=val` environments).

use super::ImportError;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub(super) struct Value {
    pub(super) text: String,
    pub(super) line: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Section {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) keys: Vec<(String, Value)>,
}

impl Section {
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.keys
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Split an INI file into sections, like Python 3's `configparser` with Supervisor's
/// settings: inline comments `;`/`#` after whitespace; a line is a continuation of the
/// key above only when it is indented deeper than that key's line (so equally indented
/// `key=value` lines are keys of their own); blank lines do not end a value; a key given
/// again replaces the earlier value (`strict=False`).
pub(super) fn parse_ini(text: &str) -> Result<Vec<Section>, ImportError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut last_key: Option<(usize, usize)> = None; // (section, key) a continuation extends
    let mut key_indent = usize::MAX; // the indentation of that key's line
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        let content = strip_inline_comment(raw);
        if let Some((s, k)) = last_key.filter(|_| indent > key_indent) {
            let v = &mut sections[s].keys[k].1.text;
            if !v.is_empty() {
                v.push('\n');
            }
            v.push_str(content.trim());
            continue;
        }
        key_indent = indent;
        let content = content.trim();
        if let Some(rest) = content.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(ImportError {
                    line,
                    message: format!("section header {content:?} has no closing `]`"),
                });
            };
            sections.push(Section {
                name: name.trim().to_owned(),
                line,
                keys: Vec::new(),
            });
            last_key = None;
            continue;
        }
        let Some(at) = content.find(['=', ':']) else {
            return Err(ImportError {
                line,
                message: format!("expected `key = value` or a [section], found {content:?}"),
            });
        };
        let Some(s) = sections.len().checked_sub(1) else {
            return Err(ImportError {
                line,
                message: "a key before any [section]".into(),
            });
        };
        let key = content[..at].trim().to_ascii_lowercase();
        let value = Value {
            text: content[at + 1..].trim().to_owned(),
            line,
        };
        let keys = &mut sections[s].keys;
        let k = match keys.iter().position(|(k, _)| *k == key) {
            Some(k) => {
                keys[k].1 = value;
                k
            }
            None => {
                keys.push((key, value));
                keys.len() - 1
            }
        };
        last_key = Some((s, k));
    }
    Ok(sections)
}

fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if (*b == b';' || *b == b'#') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Apply Python `%`-style expansions: `%(name)s`, `%(process_num)02d`, `%%`. Unknown
/// names are kept as written and reported.
pub(super) fn expand(s: &str, vars: &HashMap<String, String>, unknown: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
            continue;
        }
        let parsed = tail.strip_prefix("%(").and_then(|t| {
            let close = t.find(')')?;
            let name = &t[..close];
            let spec = &t[close + 1..];
            let conv = spec.find(|c: char| c.is_ascii_alphabetic())?;
            let (flags, kind) = (&spec[..conv], spec[conv..].chars().next()?);
            if !flags
                .chars()
                .all(|c| c.is_ascii_digit() || "-+ #.".contains(c))
            {
                return None;
            }
            let len = 2 + close + 1 + conv + 1;
            Some((name, flags, kind, len))
        });
        let Some((name, flags, kind, len)) = parsed else {
            out.push('%');
            rest = &tail[1..];
            continue;
        };
        match vars.get(name) {
            Some(v) => out.push_str(&format_value(v, flags, kind)),
            // Written for supervisord to expand when it loads the job file, from its own
            // environment, as Supervisor did when it started.
            None if vars.contains_key(ENV_LATER) && name.starts_with("ENV_") => {
                out.push_str(&env_reference(&name["ENV_".len()..]));
                if !vars.contains_key(&format!("{ENV_LATER}{name}")) {
                    unknown.push(name.to_owned());
                }
            }
            None => {
                unknown.push(name.to_owned());
                out.push_str(&tail[..len]);
            }
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// In an expansion table: `%(ENV_X)s` becomes a reference to `${X}` (see
/// [`env_reference`]) instead of a value; `ENV_LATER` + `ENV_X` marks the X that are set
/// at import time.
pub(super) const ENV_LATER: &str = "\u{0}env-later:";

/// A `${NAME}` to write into the job file, in markers that survive quoting (which writes
/// every other `$` as `$$`); [`super::quote`] turns them into `${NAME}`.
pub(super) fn env_reference(name: &str) -> String {
    format!("\u{1}{name}\u{2}")
}

/// `%02d` and friends, for the numbers Supervisor formats (`process_num`).
fn format_value(v: &str, flags: &str, kind: char) -> String {
    let zero = flags.starts_with('0');
    let width: usize = flags.trim_start_matches(['0', '-']).parse().unwrap_or(0);
    let left = flags.starts_with('-');
    match (kind, v.parse::<i64>()) {
        ('d' | 'i', Ok(n)) if zero => format!("{n:0width$}"),
        _ if left => format!("{v:<width$}"),
        _ => format!("{v:>width$}"),
    }
}

// ---- value conversions --------------------------------------------------------------------

pub(super) fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Supervisor's byte sizes: `50MB`, `1KB`, `1GB` (binary units), or bytes.
pub(super) fn byte_size(v: &str) -> Option<String> {
    let t = v.trim().to_ascii_uppercase();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" => n.to_string(),
        "KB" => format!("{n}KiB"),
        "MB" => format!("{n}MiB"),
        "GB" => format!("{n}GiB"),
        _ => return None,
    })
}

/// Supervisor's `KEY="val",KEY2=val` (values may be quoted with `"` or `'`).
pub(super) fn environment(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = v.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_owned();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("bad environment entry near {key:?}"));
        }
        let mut value = String::new();
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.peek().copied() {
            Some(q @ ('"' | '\'')) => {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if q == '"' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        c if c == q => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(format!("unclosed quote in the value of {key}"));
                }
            }
            _ => {
                while let Some(c) = chars.next_if(|c| *c != ',') {
                    value.push(c);
                }
                value = value.trim().to_owned();
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions_and_percent_escapes() {
        let vars = HashMap::from([
            ("process_num".to_owned(), "7".to_owned()),
            ("x".to_owned(), "X".to_owned()),
        ]);
        let mut unknown = Vec::new();
        assert_eq!(
            expand("%(process_num)02d-%(x)s-%%-%(nope)s", &vars, &mut unknown),
            "07-X-%-%(nope)s"
        );
        assert_eq!(unknown, ["nope"]);
    }

    #[test]
    fn environment_values_may_be_quoted() {
        let pairs = environment("A=\"x y\",B=2, C='q,r'").expect("valid");
        assert_eq!(
            pairs,
            [
                ("A".into(), "x y".into()),
                ("B".into(), "2".into()),
                ("C".into(), "q,r".into())
            ]
        );
        assert!(environment("A=\"open").is_err());
    }

    fn keys(text: &str) -> Vec<(String, String, usize)> {
        parse_ini(text).expect("parses")[0]
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.text.clone(), v.line))
            .collect()
    }

    fn kv(list: &[(&str, &str, usize)]) -> Vec<(String, String, usize)> {
        list.iter()
            .map(|(k, v, l)| (k.to_string(), v.to_string(), *l))
            .collect()
    }

    /// Python 3's configparser: a line continues the key above only when it is indented
    /// deeper than that key's line.
    #[test]
    fn equally_indented_keys_are_keys_and_deeper_lines_continue() {
        assert_eq!(
            keys("[program:a]\n  command=run\n  directory=/srv\n  user=app\n"),
            kv(&[
                ("command", "run", 2),
                ("directory", "/srv", 3),
                ("user", "app", 4)
            ])
        );
        assert_eq!(
            keys("[program:a]\ncommand=run\n  --flag\n\n  --more\nuser=app\n"),
            kv(&[("command", "run\n--flag\n--more", 2), ("user", "app", 6)])
        );
    }

    /// Supervisor reads with strict=False: a key given again replaces the earlier one.
    #[test]
    fn a_repeated_key_keeps_the_later_value() {
        assert_eq!(
            keys("[program:a]\ncommand=one\nautostart=true\ncommand=two\n"),
            kv(&[("command", "two", 4), ("autostart", "true", 3)])
        );
    }

    #[test]
    fn byte_sizes_are_binary() {
        assert_eq!(byte_size("50MB").as_deref(), Some("50MiB"));
        assert_eq!(byte_size("1024").as_deref(), Some("1024"));
        assert_eq!(byte_size("lots"), None);
    }
}
