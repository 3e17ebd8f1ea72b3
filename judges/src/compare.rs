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
    whole(&Checker::Exact, expected, actual)
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Compares whitespace-separated tokens.
pub fn tokens(expected: &[u8], actual: &[u8]) -> Check {
    whole(&Checker::Tokens, expected, actual)
}

/// Compares tokens; numbers within `tolerance` (absolute or relative).
pub fn float(expected: &[u8], actual: &[u8], tolerance: f64) -> Check {
    whole(&Checker::Float { tolerance }, expected, actual)
}

fn whole(checker: &Checker, expected: &[u8], actual: &[u8]) -> Check {
    match Stream::new(checker, expected) {
        Some(mut s) => {
            s.feed(actual);
            s.finish()
        }
        // Not reached: the three callers pass built-in checkers.
        None => Check::WrongAnswer("not a built-in checker".into()),
    }
}

/// Bytes of an output token the float checker keeps to read it as a
/// number; a longer token is compared as text (a double needs 17
/// significant digits; `%.1000f` still fits).
pub const FLOAT_TOKEN_MAX: usize = 4 << 10;

/// A built-in checker fed the program's output in pieces, in order, so
/// that an output of any size is compared in constant memory: the
/// expected output is whole (it came with the submission). The answer is
/// the same as on the whole output, whatever the pieces.
///
/// `feed` until the output ends or [`Stream::decided`] (a wrong answer is
/// known early), then `finish`.
pub struct Stream<'e> {
    expected: &'e [u8],
    mode: Mode,
    failed: Option<Check>,
    /// Exact: bytes of the output seen. Tokens: bytes of the expected
    /// output consumed.
    pos: usize,
    /// Tokens: the number (from 1) of the token being read, or the next.
    index: usize,
    /// Tokens: the output token being read, if inside one.
    cur: Option<Token<'e>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Exact,
    Tokens,
    Float(f64),
}

/// An output token being read, and the expected token it answers.
struct Token<'e> {
    expected: &'e [u8],
    /// Bytes of the output token so far.
    len: usize,
    /// They equal the expected token's first `len` bytes.
    same_text: bool,
    /// Float: the output token's bytes, while at most [`FLOAT_TOKEN_MAX`].
    text: Vec<u8>,
}

impl<'e> Stream<'e> {
    /// `None` for [`Checker::Custom`].
    pub fn new(checker: &Checker, expected: &'e [u8]) -> Option<Stream<'e>> {
        let mode = match checker {
            Checker::Exact => Mode::Exact,
            Checker::Tokens => Mode::Tokens,
            Checker::Float { tolerance } => Mode::Float(*tolerance),
            Checker::Custom { .. } => return None,
        };
        Some(Stream {
            expected,
            mode,
            failed: None,
            pos: 0,
            index: 1,
            cur: None,
        })
    }

    /// A wrong answer is known: the rest of the output cannot change it.
    pub fn decided(&self) -> bool {
        self.failed.is_some()
    }

    /// The next piece of the output.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.mode == Mode::Exact {
            return self.feed_exact(chunk);
        }
        let mut i = 0;
        while i < chunk.len() && self.failed.is_none() {
            let space = is_space(&chunk[i]);
            let run = chunk[i..]
                .iter()
                .position(|b| is_space(b) != space)
                .map_or(chunk.len(), |p| i + p);
            if space {
                self.end_token();
            } else {
                self.token_bytes(&chunk[i..run]);
            }
            i = run;
        }
    }

    /// The answer, once the output has ended.
    pub fn finish(mut self) -> Check {
        if self.mode == Mode::Exact {
            if let Some(f) = self.failed {
                return f;
            }
            return if self.pos < self.expected.len() {
                Check::WrongAnswer(format!("output ends early, at byte {}", self.pos))
            } else {
                Check::Accepted
            };
        }
        self.end_token();
        if let Some(f) = self.failed {
            return f;
        }
        self.skip_expected_space();
        if self.pos < self.expected.len() {
            Check::WrongAnswer(format!(
                "output ends early: token {} is missing",
                self.index
            ))
        } else {
            Check::Accepted
        }
    }

    fn fail(&mut self, why: String) {
        self.failed = Some(Check::WrongAnswer(why));
        self.cur = None;
    }

    fn feed_exact(&mut self, chunk: &[u8]) {
        let rest = &self.expected[self.pos.min(self.expected.len())..];
        let n = chunk.len().min(rest.len());
        if let Some(d) = chunk[..n].iter().zip(&rest[..n]).position(|(a, b)| a != b) {
            return self.fail(format!("first difference at byte {}", self.pos + d));
        }
        if chunk.len() > rest.len() {
            return self.fail(format!("output goes on after byte {}", self.expected.len()));
        }
        self.pos += chunk.len();
    }

    fn skip_expected_space(&mut self) {
        self.pos += self.expected[self.pos..]
            .iter()
            .position(|b| !is_space(b))
            .unwrap_or(self.expected.len() - self.pos);
    }

    /// Bytes (no whitespace) of an output token: the start of one, or more.
    fn token_bytes(&mut self, bytes: &[u8]) {
        if self.cur.is_none() {
            self.skip_expected_space();
            if self.pos == self.expected.len() {
                return self.fail(format!("output has extra tokens from token {}", self.index));
            }
            let rest = &self.expected[self.pos..];
            let len = rest.iter().position(is_space).unwrap_or(rest.len());
            self.cur = Some(Token {
                expected: &rest[..len],
                len: 0,
                same_text: true,
                text: Vec::new(),
            });
            self.pos += len;
        }
        let mode = self.mode;
        let Some(t) = self.cur.as_mut() else {
            return;
        };
        t.same_text = t.same_text && t.expected.get(t.len..t.len + bytes.len()) == Some(bytes);
        t.len += bytes.len();
        let numeric_possible = t.len <= FLOAT_TOKEN_MAX;
        match mode {
            Mode::Float(_) if numeric_possible => t.text.extend_from_slice(bytes),
            Mode::Float(_) => t.text = Vec::new(),
            _ => {}
        }
        // Only text can still make it equal: a difference is final.
        if !t.same_text && (mode == Mode::Tokens || !numeric_possible) {
            let why = format!("token {} differs", self.index);
            self.fail(why);
        }
    }

    /// The output token being read (if any) has ended.
    fn end_token(&mut self) {
        let Some(t) = self.cur.take() else {
            return;
        };
        let same = t.same_text && t.len == t.expected.len();
        let equal = match self.mode {
            Mode::Float(tolerance) if t.len <= FLOAT_TOKEN_MAX => {
                match (parse_number(t.expected), parse_number(&t.text)) {
                    (Some(x), Some(y)) => close(x, y, tolerance),
                    _ => same,
                }
            }
            _ => same,
        };
        if !equal {
            let why = format!("token {} differs", self.index);
            return self.fail(why);
        }
        self.index += 1;
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

    /// The in-memory checkers as they were before the streaming ones
    /// (whole outputs): the reference the streams must agree with.
    mod reference {
        use super::super::{close, is_space, parse_number, Check};

        pub fn exact(expected: &[u8], actual: &[u8]) -> Check {
            if expected == actual {
                return Check::Accepted;
            }
            let at = expected
                .iter()
                .zip(actual)
                .position(|(a, b)| a != b)
                .unwrap_or(expected.len().min(actual.len()));
            Check::WrongAnswer(if at == actual.len() {
                format!("output ends early, at byte {at}")
            } else if at == expected.len() {
                format!("output goes on after byte {at}")
            } else {
                format!("first difference at byte {at}")
            })
        }

        fn tokens_of(s: &[u8]) -> impl Iterator<Item = &[u8]> {
            s.split(is_space).filter(|t| !t.is_empty())
        }

        pub fn tokens(e: &[u8], a: &[u8], float: Option<f64>) -> Check {
            let eq = |x: &[u8], y: &[u8]| match (float, parse_number(x), parse_number(y)) {
                (Some(t), Some(x), Some(y)) => close(x, y, t),
                _ => x == y,
            };
            let (mut e, mut a, mut i) = (tokens_of(e), tokens_of(a), 1);
            loop {
                match (e.next(), a.next()) {
                    (None, None) => return Check::Accepted,
                    (Some(_), None) => {
                        return Check::WrongAnswer(format!(
                            "output ends early: token {i} is missing"
                        ))
                    }
                    (None, Some(_)) => {
                        return Check::WrongAnswer(format!(
                            "output has extra tokens from token {i}"
                        ))
                    }
                    (Some(x), Some(y)) if !eq(x, y) => {
                        return Check::WrongAnswer(format!("token {i} differs"))
                    }
                    _ => i += 1,
                }
            }
        }
    }

    /// A small deterministic generator (xorshift), so that failures
    /// reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Text from an alphabet of whitespace, digits and number syntax,
        /// sometimes a small edit of `base` (near answers are the hard
        /// cases).
        fn text(&mut self, base: Option<&[u8]>) -> Vec<u8> {
            const ALPHABET: &[u8] = b"  \n\t\r01239.-+eEax";
            if let Some(b) = base.filter(|_| self.below(3) > 0) {
                let mut t = b.to_vec();
                for _ in 0..self.below(3) {
                    let at = self.below(t.len() + 1);
                    match self.below(3) {
                        0 if at < t.len() => {
                            t.remove(at);
                        }
                        1 => t.insert(at, ALPHABET[self.below(ALPHABET.len())]),
                        _ if at < t.len() => t[at] = ALPHABET[self.below(ALPHABET.len())],
                        _ => {}
                    }
                }
                return t;
            }
            (0..self.below(24))
                .map(|_| ALPHABET[self.below(ALPHABET.len())])
                .collect()
        }
    }

    fn streamed(checker: &Checker, expected: &[u8], actual: &[u8], cuts: &[usize]) -> Check {
        let mut s = Stream::new(checker, expected).unwrap();
        let mut at = 0;
        for &c in cuts {
            let c = c.min(actual.len());
            if c > at {
                s.feed(&actual[at..c]);
                at = c;
            }
        }
        s.feed(&actual[at..]);
        s.finish()
    }

    #[test]
    fn streams_agree_with_the_whole_output_checkers_whatever_the_pieces() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let checkers = [
            Checker::Exact,
            Checker::Tokens,
            Checker::Float { tolerance: 1e-6 },
            Checker::Float { tolerance: 0.5 },
        ];
        for round in 0..20_000 {
            let expected = rng.text(None);
            let actual = rng.text(Some(&expected));
            let mut cuts: Vec<usize> = (0..rng.below(5))
                .map(|_| rng.below(actual.len() + 1))
                .collect();
            cuts.sort();
            for c in &checkers {
                let want = match c {
                    Checker::Exact => reference::exact(&expected, &actual),
                    Checker::Tokens => reference::tokens(&expected, &actual, None),
                    Checker::Float { tolerance } => {
                        reference::tokens(&expected, &actual, Some(*tolerance))
                    }
                    Checker::Custom { .. } => unreachable!(),
                };
                let got = streamed(c, &expected, &actual, &cuts);
                assert_eq!(
                    got,
                    want,
                    "round {round}, {c:?}: expected {:?}, actual {:?}, cuts {cuts:?}",
                    String::from_utf8_lossy(&expected),
                    String::from_utf8_lossy(&actual)
                );
                // Byte by byte, the smallest pieces.
                let every: Vec<usize> = (0..=actual.len()).collect();
                assert_eq!(
                    streamed(c, &expected, &actual, &every),
                    want,
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_answer_is_decided_early_and_an_accepted_one_only_at_the_end() {
        let mut s = Stream::new(&Checker::Tokens, b"1 2 3").unwrap();
        s.feed(b"1 2");
        assert!(!s.decided(), "a prefix of a right answer");
        s.feed(b" 4");
        assert!(s.decided(), "token 3 differs, whatever follows");
        assert_eq!(s.finish(), Check::WrongAnswer("token 3 differs".into()));
        let mut s = Stream::new(&Checker::Exact, b"ab").unwrap();
        s.feed(b"abc");
        assert!(s.decided());
        assert!(Stream::new(
            &Checker::Custom {
                language: "c".into(),
                source: String::new()
            },
            b""
        )
        .is_none());
    }

    #[test]
    fn huge_outputs_compare_in_constant_memory() {
        // 64 MiB of whitespace around one right token, fed in 64 KiB
        // pieces: accepted; the same with a wrong token at the very end.
        let chunk = vec![b' '; 64 << 10];
        for (last, want) in [
            (&b"\n"[..], Check::Accepted),
            (
                &b"\ny\n"[..],
                Check::WrongAnswer("output has extra tokens from token 2".into()),
            ),
        ] {
            let mut s = Stream::new(&Checker::Tokens, b"x\n").unwrap();
            s.feed(b"x");
            for _ in 0..1024 {
                s.feed(&chunk);
            }
            s.feed(last);
            assert_eq!(s.finish(), want);
        }
        // One numeric token longer than the float checker reads as a
        // number: compared as text, without keeping it.
        let long = format!("1.{}", "0".repeat(FLOAT_TOKEN_MAX + 10));
        let f = Checker::Float { tolerance: 1e-6 };
        assert_eq!(
            streamed(&f, long.as_bytes(), long.as_bytes(), &[1, 100, 5000]),
            Check::Accepted
        );
        assert_eq!(
            streamed(&f, b"1", long.as_bytes(), &[7]),
            Check::WrongAnswer("token 1 differs".into()),
            "a token longer than {FLOAT_TOKEN_MAX} bytes is text"
        );
        let near = format!("1.{}", "0".repeat(FLOAT_TOKEN_MAX - 10));
        assert_eq!(
            streamed(&f, b"1", near.as_bytes(), &[3, 700]),
            Check::Accepted
        );
    }
}
