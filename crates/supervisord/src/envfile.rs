//! `.env` files in docker compose's syntax: `KEY=VALUE` lines, `#` comments, an optional
//! `export ` prefix, and values unquoted, in single quotes (taken literally) or in double
//! quotes (with `\n`, `\t`, `\\`, `\"`, `\$` escapes). Both kinds of quotes may span
//! lines. An unquoted value ends at a ` #` comment and is trimmed.
//!
//! Pure: [`parse`] turns text into entries; whether and how `${VAR}` in a value is
//! expanded is the caller's business (compose expands unquoted and double-quoted values,
//! never single-quoted ones, and [`Entry::expand`] says which).

use std::fmt;

/// One `KEY=VALUE` of an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The variable's name.
    pub key: String,
    /// Its value, quotes removed and escapes applied.
    pub value: String,
    /// The 1-based line it starts on.
    pub line: usize,
    /// Whether `${VAR}` in the value is to be expanded (not for single-quoted values).
    pub expand: bool,
}

/// Why an env file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for EnvFileError {}

/// Parse an env file's text. A key given twice keeps its last value (as compose does);
/// every entry is returned, in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, EnvFileError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let raw = lines[i];
        i += 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indent = raw.chars().count() - line.chars().count();
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let fail = |column: usize, message: String| EnvFileError {
            line: start + 1,
            column,
            message,
        };
        let Some(eq) = line.find('=') else {
            return Err(fail(
                indent + 1,
                // Never the line itself: it may hold a secret.
                "expected KEY=VALUE".to_owned(),
            ));
        };
        let key = line[..eq].trim_end();
        if !valid_key(key) {
            return Err(fail(
                indent + 1,
                "the name before `=` is not a variable name (letters, digits, `_`, `.`, not starting with a digit)".to_owned(),
            ));
        }
        let value_col = indent + line[..=eq].chars().count() + 1;
        let value = line[eq + 1..].trim_start();
        let (value, expand) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let mut body = value[1..].to_owned();
                let closed = loop {
                    if let Some(end) = closing_quote(&body, q) {
                        let after = body[end + 1..].trim();
                        if !(after.is_empty() || after.starts_with('#')) {
                            return Err(fail(
                                value_col,
                                "unexpected text after the closing quote".to_owned(),
                            ));
                        }
                        body.truncate(end);
                        break true;
                    }
                    match lines.get(i) {
                        Some(next) => {
                            body.push('\n');
                            body.push_str(next);
                            i += 1;
                        }
                        None => break false,
                    }
                };
                if !closed {
                    return Err(fail(value_col, format!("no closing {q} for this value")));
                }
                if q == '"' {
                    (unescape(&body), true)
                } else {
                    (body, false)
                }
            }
            _ => (strip_comment(value).trim_end().to_owned(), true),
        };
        entries.push(Entry {
            key: key.to_owned(),
            value,
            line: start + 1,
            expand,
        });
    }
    Ok(entries)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The byte index of the quote that closes a value (a `\"` inside double quotes does not).
fn closing_quote(body: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if q == '"' && escaped {
            escaped = false;
        } else if q == '"' && c == '\\' {
            escaped = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

/// An unquoted value ends where a `#` follows white space.
fn strip_comment(value: &str) -> &str {
    let mut prev_space = false;
    for (i, c) in value.char_indices() {
        if c == '#' && prev_space {
            return &value[..i];
        }
        prev_space = c.is_whitespace();
    }
    value
}

fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            // `\$` stays an escaped dollar for the interpolation step: `$$`.
            Some('$') => out.push_str("$$"),
            Some(other @ ('\\' | '"')) => out.push(other),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text)
            .expect("valid")
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn compose_syntax() {
        let text = "\
# a comment
PORT=8000
export HOST = db.local
EMPTY=
SPACED =  two words   # a comment
HASH=a#b
SINGLE='it is ${LITERAL} \\n'
DOUBLE=\"line1\\nline2 \\\"quoted\\\" \\$HOME\"
  INDENTED=yes
";
        assert_eq!(
            kv(text),
            pairs(&[
                ("PORT", "8000"),
                ("HOST", "db.local"),
                ("EMPTY", ""),
                ("SPACED", "two words"),
                ("HASH", "a#b"),
                ("SINGLE", "it is ${LITERAL} \\n"),
                ("DOUBLE", "line1\nline2 \"quoted\" $$HOME"),
                ("INDENTED", "yes"),
            ])
        );
    }

    #[test]
    fn values_by_kind() {
        let e = parse("A=plain ${X}\nB='lit ${X}'\nC=\"dq ${X}\"\n").expect("valid");
        assert_eq!(
            e.iter()
                .map(|e| (e.key.as_str(), e.value.as_str(), e.expand))
                .collect::<Vec<_>>(),
            [
                ("A", "plain ${X}", true),
                ("B", "lit ${X}", false),
                ("C", "dq ${X}", true)
            ]
        );
    }

    #[test]
    fn quotes_span_lines() {
        let e = parse("KEY=\"-----BEGIN\nabc\n-----END\"\nNEXT=1\n").expect("valid");
        assert_eq!(e[0].value, "-----BEGIN\nabc\n-----END");
        assert_eq!((e[1].key.as_str(), e[1].line), ("NEXT", 4));
    }

    #[test]
    fn errors_say_line_and_column() {
        let e = parse("OK=1\nnot a pair\n").expect_err("no =");
        assert_eq!((e.line, e.column), (2, 1));
        let e = parse("1BAD=x\n").expect_err("bad key");
        assert!(e.message.contains("not a variable name"), "{e}");
        let e = parse("A=\"open\nB=2\n").expect_err("unclosed");
        assert_eq!((e.line, e.column), (1, 3));
        let e = parse("A='x' y\n").expect_err("trailing");
        assert!(e.message.contains("after the closing quote"), "{e}");
    }
}
