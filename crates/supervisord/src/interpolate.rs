//! `${VAR}` interpolation in job-file strings: `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, and `$$` for a literal `$`.
//!
//! The forms and their meaning are docker compose's. One difference, on purpose: a bare
//! `$NAME` (no braces) is left as it is, because job files already hold shell snippets
//! (`["sh", "-c", "echo $1"]`) that must keep working; only `${…}` and `$$` are special.
//!
//! Pure: the caller passes the lookup, so the job file, env files and tests decide where
//! values come from. Errors carry the byte offset of the `$` that starts the bad
//! expression, so the caller can turn it into a line and column.

use std::fmt;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolateError {
    /// Byte offset of the `$` that starts the expression, in the input.
    pub offset: usize,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for InterpolateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InterpolateError {}

/// Expand every `${…}` and `$$` in `input`, looking names up with `lookup`.
pub fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    let mut base = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let at = base + i;
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            base = at + 2;
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = closing_brace(body) else {
                return Err(InterpolateError {
                    offset: at,
                    message: "unclosed `${` (write `$$` for a literal `$`)".into(),
                });
            };
            out.push_str(&expression(&body[..close], at, lookup)?);
            base = at + 2 + close + 1;
            rest = &body[close + 1..];
        } else {
            out.push('$');
            base = at + 1;
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The `}` that closes a `${`, skipping the `${…}` nested in a default.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// An error stays one line even when it quotes a multi-line string's `${…}` or a
/// `:?message` with a line break: control characters are written as escapes.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Whether `input` holds anything [`expand`] would change.
pub fn needs_expanding(input: &str) -> bool {
    input.contains("${") || input.contains("$$")
}

/// One `${…}` body (without the braces).
fn expression(
    body: &str,
    at: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    let fail = |message: String| InterpolateError {
        offset: at,
        message: one_line(&message),
    };
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, op) = body.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(fail(format!(
            "`${{{body}}}`: expected a variable name (letters, digits, `_`, not starting with a digit)"
        )));
    }
    let value = lookup(name);
    let set_and_not_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (unset_only, op) = match op.strip_prefix(':') {
        Some(op) => (false, op),
        None => (true, op),
    };
    // With `:` an empty value counts as unset; without it only a missing one does.
    let missing = if unset_only {
        value.is_none()
    } else {
        !set_and_not_empty
    };
    if op.is_empty() {
        if !unset_only {
            return Err(fail(format!(
                "`${{{body}}}`: expected `:-default` or `:?message` after `:`"
            )));
        }
        return value.ok_or_else(|| {
            fail(format!(
                "{name} is not set (use `${{{name}:-default}}` for a default)"
            ))
        });
    }
    if let Some(default) = op.strip_prefix('-') {
        return Ok(if missing {
            expand(default, lookup).map_err(|e| fail(e.message))?
        } else {
            value.unwrap_or_default()
        });
    }
    if let Some(message) = op.strip_prefix('?') {
        if missing {
            let message = if message.is_empty() {
                format!("{name} is not set")
            } else {
                format!("{name}: {message}")
            };
            return Err(fail(message));
        }
        return Ok(value.unwrap_or_default());
    }
    Err(fail(format!(
        "`${{{body}}}`: expected `}}`, `:-default`, `-default`, `:?message` or `?message` after the name"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<&'static str, &'static str> {
        HashMap::from([("PORT", "8000"), ("EMPTY", ""), ("HOST", "db")])
    }

    fn x(input: &str) -> Result<String, InterpolateError> {
        let env = env();
        expand(input, &|k| env.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn errors_are_one_line_even_for_a_reference_across_lines() {
        // Found by the fuzzer: an unclosed `${` in a multi-line string, and a message
        // with a line break, quoted into the error as they were.
        for input in [
            "${NAME\nrest}",
            "${NOPE:?first\nsecond}",
            "${\u{7}x}",
            "${A:-${B\tC}}",
        ] {
            let e = x(input).expect_err(input);
            assert!(
                !e.message.contains(['\n', '\t', '\u{7}']),
                "{input:?}: {:?}",
                e.message
            );
        }
        assert_eq!(
            x("${NOPE:?first\nsecond}").expect_err("unset").message,
            "NOPE: first\\nsecond"
        );
    }

    #[test]
    fn plain_text_and_bare_dollars_are_left_alone() {
        assert_eq!(x("echo $1 and $HOME").expect("ok"), "echo $1 and $HOME");
        assert_eq!(x("cost: 5$").expect("ok"), "cost: 5$");
        assert_eq!(x("").expect("ok"), "");
        assert!(!needs_expanding("echo $HOME"));
        assert!(needs_expanding("${HOME}"));
        assert!(needs_expanding("$$"));
    }

    #[test]
    fn variables_defaults_and_literal_dollars() {
        assert_eq!(x("--port=${PORT}").expect("ok"), "--port=8000");
        assert_eq!(x("${MISSING:-9000}").expect("ok"), "9000");
        assert_eq!(x("${EMPTY:-fallback}").expect("ok"), "fallback");
        assert_eq!(x("${EMPTY-fallback}").expect("ok"), "", "set but empty");
        assert_eq!(x("${MISSING-fallback}").expect("ok"), "fallback");
        assert_eq!(x("${PORT:-9000}").expect("ok"), "8000");
        assert_eq!(x("$${PORT}").expect("ok"), "${PORT}");
        assert_eq!(x("$$$$").expect("ok"), "$$");
        assert_eq!(
            x("${MISSING:-${HOST}}").expect("ok"),
            "db",
            "nested default"
        );
        assert_eq!(x("${HOST}:${PORT}/x").expect("ok"), "db:8000/x");
        assert_eq!(x("${EMPTY}").expect("ok"), "");
    }

    #[test]
    fn required_variables_fail_with_the_message_and_where() {
        let e = x("url=${DATABASE_URL:?set DATABASE_URL in .env}").expect_err("unset");
        assert_eq!(e.message, "DATABASE_URL: set DATABASE_URL in .env");
        assert_eq!(e.offset, 4);
        let e = x("${EMPTY:?must not be empty}").expect_err("empty");
        assert_eq!(e.message, "EMPTY: must not be empty");
        assert_eq!(x("${EMPTY?only unset fails}").expect("ok"), "");
        let e = x("a ${NOPE}").expect_err("unset");
        assert_eq!(e.offset, 2);
        assert!(e.message.starts_with("NOPE is not set"), "{}", e.message);
    }

    #[test]
    fn malformed_expressions_are_errors_at_their_dollar() {
        for (input, offset) in [
            ("ab${PORT", 2),
            ("${}", 0),
            ("x${1A}", 1),
            ("${A:}", 0),
            ("${A!}", 0),
        ] {
            let e = x(input).expect_err(input);
            assert_eq!(e.offset, offset, "{input}: {}", e.message);
        }
    }

    #[test]
    fn offsets_count_bytes_after_multibyte_text() {
        let e = x("é ${NOPE}").expect_err("unset");
        assert_eq!(e.offset, "é ".len());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any string: an answer or an error at a `$` inside it, never a panic.
        #[test]
        fn never_panics_and_errors_point_at_a_dollar(input in ".{0,64}", value in "[a-z$}{]{0,8}") {
            let lookup = |k: &str| k.starts_with(|c: char| c < 'n').then(|| value.clone());
            match expand(&input, &lookup) {
                Ok(_) => {}
                Err(e) => prop_assert_eq!(input.as_bytes().get(e.offset), Some(&b'$')),
            }
        }

        /// Text without `${` or `$$` comes back unchanged.
        #[test]
        fn text_without_expressions_is_unchanged(input in "[^$]{0,64}|[a-z ]{0,8}\\$[a-z ]{0,8}") {
            prop_assert_eq!(expand(&input, &|_| None).expect("no expressions"), input);
        }
    }
}
