//! Registry authentication: the `WWW-Authenticate` challenges of a 401
//! (RFC 7235 syntax; the distribution token spec's `Bearer realm=...,
//! service=...,scope=...` and plain `Basic`) and the token server's answer.

use std::collections::BTreeMap;

use base64::Engine as _;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased (`bearer`, `basic`).
    pub scheme: String,
    /// Parameter names lower-cased, values unquoted.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(|s| s.as_str())
    }
}

/// Parses a `WWW-Authenticate` value, which may hold several challenges
/// (`Bearer realm="a",scope="b", Basic realm="c"`). Malformed tails are
/// dropped; what parsed before them is kept.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        p.skip_ws_and_commas();
        let Some(scheme) = p.token() else { break };
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        // auth-params until something that is not `name=` follows a comma.
        loop {
            p.skip_ws();
            let save = p.i;
            let Some(name) = p.token() else { break };
            p.skip_ws();
            if !p.eat(b'=') {
                // The next challenge's scheme.
                p.i = save;
                break;
            }
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                match p.quoted() {
                    Some(v) => v,
                    None => {
                        out.push(ch);
                        return out;
                    }
                }
            } else {
                match p.token68() {
                    Some(v) => v,
                    None => break,
                }
            };
            ch.params.insert(name.to_ascii_lowercase(), value);
            p.skip_ws();
            if !p.eat(b',') {
                break;
            }
        }
        out.push(ch);
        if p.i >= p.s.len() {
            break;
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    /// RFC 7230 `token`.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    /// An unquoted value: a token, plus '/' and '=' that some servers leave
    /// unquoted (token68, URLs).
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/=:".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    /// A quoted-string with backslash escapes; None if unterminated.
    fn quoted(&mut self) -> Option<String> {
        self.eat(b'"');
        let mut v = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&v).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    v.push(self.peek()?);
                    self.i += 1;
                }
                c => {
                    v.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

/// `Authorization: Basic ...` for a user and password.
pub fn basic(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The token server's answer: `token`, or OAuth2's `access_token`.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_of_docker_hub() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/debian:pull"));
    }

    #[test]
    fn several_challenges_unquoted_values_and_escapes() {
        let c = parse_challenges(
            r#"Basic realm="Registry \"x\"", Bearer Realm=http://127.0.0.1:1/token, service=svc ,error="invalid_token""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"Registry "x""#));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(c[1].param("service"), Some("svc"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
        // A bare scheme and junk.
        assert_eq!(parse_challenges("Basic")[0].scheme, "basic");
        assert!(parse_challenges("").is_empty());
        let c = parse_challenges(r#"Bearer realm="unterminated"#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), None);
    }

    #[test]
    fn basic_header_and_token_answers() {
        assert_eq!(basic("user", "pass"), "Basic dXNlcjpwYXNz");
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("a"));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"t","access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("t"));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }
}
