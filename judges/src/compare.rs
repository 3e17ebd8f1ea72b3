//! Checkers: whether a program's output answers a test. The built-in ones
//! are pure functions here; a custom checker is a program compiled and run
//! in a sandbox like a submission (the pipeline does that, and maps its
//! exit status with [`custom_status`]).
//!
//! Details of a wrong answer give positions only, never the expected text.

use serde::{Deserialize, Serialize};

/// How outputs are compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawChecker")]
pub enum Checker {
    /// Byte for byte.
    Exact,
    /// The same whitespace-separated tokens (spaces, tabs, newlines, CR,
    /// VT, FF), byte for byte each; any amount of whitespace between,
    /// before and after. The default.
    #[default]
    Tokens,
    /// Tokens; numeric tokens are equal within `tolerance`, absolute or
    /// relative to the expected value; other tokens exactly.
    Float { tolerance: f64 },
    /// A program run per test as `checker INPUT EXPECTED ACTUAL` (file
    /// paths): exit 0 accepted, 1 wrong answer, anything else an internal
    /// error.
    Custom { language: String, source: String },
}

// The JSON form, checked field by field: serde's internal tagging ignores
// unknown fields of unit variants, and a stray field (`tolerance` on
// `tokens`) is most likely a mistake worth refusing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecker {
    kind: String,
    tolerance: Option<f64>,
    language: Option<String>,
    source: Option<String>,
}

impl TryFrom<RawChecker> for Checker {
    type Error = String;

    fn try_from(r: RawChecker) -> Result<Checker, String> {
        let stray = |fields: &[(&str, bool)]| match fields.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(format!("checker kind {:?} takes no {name:?}", r.kind)),
            None => Ok(()),
        };
        let (t, l, s) = (
            r.tolerance.is_some(),
            r.language.is_some(),
            r.source.is_some(),
        );
        match r.kind.as_str() {
            "exact" | "tokens" => {
                stray(&[("tolerance", t), ("language", l), ("source", s)])?;
                Ok(if r.kind == "exact" {
                    Checker::Exact
                } else {
                    Checker::Tokens
                })
            }
            "float" => {
                stray(&[("language", l), ("source", s)])?;
                Ok(Checker::Float {
                    tolerance: r.tolerance.unwrap_or_else(default_tolerance),
                })
            }
            "custom" => {
                stray(&[("tolerance", t)])?;
                match (r.language, r.source) {
                    (Some(language), Some(source)) => Ok(Checker::Custom { language, source }),
                    _ => Err("checker kind \"custom\" needs \"language\" and \"source\"".into()),
                }
            }
            other => Err(format!(
                "unknown checker kind {other:?} (known: exact, tokens, float, custom)"
            )),
        }
    }
}

pub fn default_tolerance() -> f64 {
    1e-6
}

/// Range of the float checker's tolerance.
pub const TOLERANCE_MAX: f64 = 1.0;

/// The answer of a checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Accepted,
    WrongAnswer(String),
}

/// Compares bytes.
pub fn exact(expected: &[u8], actual: &[u8]) -> Check {
    if expected == actual {
        return Check::Accepted;
    }
    let at = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let why = if at == actual.len() {
        format!("output ends early, at byte {at}")
    } else if at == expected.len() {
        format!("output goes on after byte {at}")
    } else {
        format!("first difference at byte {at}")
    };
    Check::WrongAnswer(why)
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn tokens_of(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(is_space).filter(|t| !t.is_empty())
}

/// Compares whitespace-separated tokens.
pub fn tokens(expected: &[u8], actual: &[u8]) -> Check {
    compare_tokens(expected, actual, |e, a| e == a)
}

/// Compares tokens; numbers within `tolerance` (absolute or relative).
pub fn float(expected: &[u8], actual: &[u8], tolerance: f64) -> Check {
    compare_tokens(expected, actual, |e, a| {
        match (parse_number(e), parse_number(a)) {
            (Some(x), Some(y)) => close(x, y, tolerance),
            _ => e == a,
        }
    })
}

fn compare_tokens(expected: &[u8], actual: &[u8], eq: impl Fn(&[u8], &[u8]) -> bool) -> Check {
    let mut e = tokens_of(expected);
    let mut a = tokens_of(actual);
    let mut i = 1usize;
    loop {
        match (e.next(), a.next()) {
            (None, None) => return Check::Accepted,
            (Some(_), None) => {
                return Check::WrongAnswer(format!("output ends early: token {i} is missing"))
            }
            (None, Some(_)) => {
                return Check::WrongAnswer(format!("output has extra tokens from token {i}"))
            }
            (Some(x), Some(y)) => {
                if !eq(x, y) {
                    return Check::WrongAnswer(format!("token {i} differs"));
                }
            }
        }
        i += 1;
    }
}

fn close(expected: f64, actual: f64, tolerance: f64) -> bool {
    let diff = (expected - actual).abs();
    diff <= tolerance || diff <= tolerance * expected.abs()
}

/// A decimal number (`-1`, `3.25`, `.5`, `1e-9`); not `inf`, `nan` or hex,
/// which are compared as text.
pub fn parse_number(t: &[u8]) -> Option<f64> {
    let mut i = 0;
    if matches!(t.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while t.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if t.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return None;
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != t.len() {
        return None;
    }
    std::str::from_utf8(t)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// What a custom checker's exit means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomStatus {
    Accepted,
    WrongAnswer,
    /// Any other status: the checker is broken (`INTERNAL_ERROR`).
    Broken,
}

/// Maps a custom checker's exit code (`None`: it did not exit normally).
pub fn custom_status(exit_code: Option<i32>) -> CustomStatus {
    match exit_code {
        Some(0) => CustomStatus::Accepted,
        Some(1) => CustomStatus::WrongAnswer,
        _ => CustomStatus::Broken,
    }
}

/// Runs a built-in checker; `None` for [`Checker::Custom`].
pub fn builtin(checker: &Checker, expected: &[u8], actual: &[u8]) -> Option<Check> {
    match checker {
        Checker::Exact => Some(exact(expected, actual)),
        Checker::Tokens => Some(tokens(expected, actual)),
        Checker::Float { tolerance } => Some(float(expected, actual, *tolerance)),
        Checker::Custom { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: Check) -> bool {
        c == Check::Accepted
    }

    #[test]
    fn exact_compares_bytes() {
        assert!(ok(exact(b"3\n", b"3\n")));
        assert!(!ok(exact(b"3\n", b"3 \n")));
        assert!(!ok(exact(b"3\n", b"3")));
        assert!(!ok(exact(b"3\n", b"3\r\n")));
        assert!(ok(exact(b"", b"")));
        assert_eq!(
            exact(b"abc", b"abd"),
            Check::WrongAnswer("first difference at byte 2".into())
        );
        assert_eq!(
            exact(b"abc", b"ab"),
            Check::WrongAnswer("output ends early, at byte 2".into())
        );
        assert_eq!(
            exact(b"ab", b"abc"),
            Check::WrongAnswer("output goes on after byte 2".into())
        );
    }

    #[test]
    fn tokens_ignore_whitespace_only() {
        assert!(ok(tokens(b"1 2\n3\n", b"1   2 3")));
        assert!(ok(tokens(b"3\n", b"3   \n\n")));
        assert!(ok(tokens(b"3\n", b"\r\n3\r\n")));
        assert!(ok(tokens(b"a\tb", b"a\x0bb\x0c")));
        assert!(ok(tokens(b"", b" \n ")));
        assert!(!ok(tokens(b"1 2", b"12")));
        assert!(!ok(tokens(b"1 2", b"1 2 3")));
        assert!(!ok(tokens(b"1 2", b"1")));
        assert!(!ok(tokens(b"Yes", b"yes")));
        assert!(!ok(tokens(b"1", b"1.0")));
        assert_eq!(
            tokens(b"1 2 3", b"1 2 4"),
            Check::WrongAnswer("token 3 differs".into())
        );
    }

    #[test]
    fn float_tolerance_absolute_or_relative() {
        assert!(ok(float(b"0.5", b"0.5000001", 1e-6)));
        assert!(!ok(float(b"0.5", b"0.50001", 1e-6)));
        // Relative: 1e9 * 1e-6 = 1000.
        assert!(ok(float(b"1000000000", b"1000000500", 1e-6)));
        assert!(!ok(float(b"1000000000", b"1000002000", 1e-6)));
        assert!(ok(float(b"1", b"1.0000000", 1e-6)));
        assert!(ok(float(b"1e-3", b"0.001", 0.0)));
        assert!(ok(float(b"-2.5", b"-2.5", 0.0)));
        assert!(!ok(float(b"-2.5", b"2.5", 1e-6)));
        // Non-numeric tokens are exact, and a word never equals a number.
        assert!(ok(float(b"YES 0.3", b"YES 0.30000001", 1e-6)));
        assert!(!ok(float(b"YES 0.3", b"yes 0.3", 1e-6)));
        assert!(!ok(float(b"0.3", b"zero", 1e-6)));
        assert!(!ok(float(b"nan", b"0", 1.0)));
        assert!(ok(float(b"nan", b"nan", 1e-6)));
        assert!(!ok(float(b"1 2", b"1", 1e-6)));
    }

    #[test]
    fn numbers_are_plain_decimals() {
        for (t, v) in [
            ("1", 1.0),
            ("-1", -1.0),
            ("+2.5", 2.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1.5E-2", 0.015),
        ] {
            assert_eq!(parse_number(t.as_bytes()), Some(v), "{t}");
        }
        for t in [
            "", "-", ".", "e5", "1e", "1e+", "inf", "NaN", "0x10", "1,5", "1.2.3", "--1", "1e999",
        ] {
            assert_eq!(parse_number(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn custom_exit_codes() {
        assert_eq!(custom_status(Some(0)), CustomStatus::Accepted);
        assert_eq!(custom_status(Some(1)), CustomStatus::WrongAnswer);
        assert_eq!(custom_status(Some(2)), CustomStatus::Broken);
        assert_eq!(custom_status(None), CustomStatus::Broken);
    }

    #[test]
    fn checker_json_forms() {
        let c: Checker = serde_json::from_str(r#"{"kind":"exact"}"#).unwrap();
        assert_eq!(c, Checker::Exact);
        let c: Checker = serde_json::from_str(r#"{"kind":"float"}"#).unwrap();
        assert_eq!(c, Checker::Float { tolerance: 1e-6 });
        let c: Checker = serde_json::from_str(r#"{"kind":"float","tolerance":0.01}"#).unwrap();
        assert_eq!(c, Checker::Float { tolerance: 0.01 });
        let c: Checker =
            serde_json::from_str(r#"{"kind":"custom","language":"python","source":"x"}"#).unwrap();
        assert!(matches!(c, Checker::Custom { .. }));
        assert!(serde_json::from_str::<Checker>(r#"{"kind":"regex"}"#).is_err());
        assert!(serde_json::from_str::<Checker>(r#"{"kind":"exact","x":1}"#).is_err());
        let e = serde_json::from_str::<Checker>(r#"{"kind":"tokens","tolerance":1}"#).unwrap_err();
        assert!(e.to_string().contains("takes no \"tolerance\""), "{e}");
        let e = serde_json::from_str::<Checker>(r#"{"kind":"custom","language":"c"}"#).unwrap_err();
        assert!(e.to_string().contains("needs"), "{e}");
        let e = serde_json::from_str::<Checker>(r#"{"kind":"regex"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown checker kind \"regex\""),
            "{e}"
        );
        for c in [
            Checker::Exact,
            Checker::Tokens,
            Checker::Float { tolerance: 0.5 },
        ] {
            let back: Checker = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert_eq!(Checker::default(), Checker::Tokens);
        assert_eq!(
            builtin(&Checker::Exact, b"1", b"1 "),
            Some(Check::WrongAnswer("output goes on after byte 1".into()))
        );
    }
}
