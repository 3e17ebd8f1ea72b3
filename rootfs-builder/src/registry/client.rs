//! The HTTP side of a pull: one blocking `ureq` agent (rustls, webpki
//! roots, no transparent decompression: digests are over the bytes as
//! served), the scheme decision, and the 401 → challenge → token → retry
//! dance of the distribution token spec.

use std::io::Read;
use std::time::Duration;

use super::auth::{self, Challenge};
use super::reference::{Reference, Scheme};
use super::{PullError, PullOptions};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Per socket read, so a slow but moving download of a big layer is fine.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Error bodies and token answers are small.
const SMALL_BODY: u64 = 64 << 10;

pub struct Client {
    agent: ureq::Agent,
    /// `https://host:port` or `http://host:port`.
    base: String,
    /// insecure and no scheme written: https is tried first and plain http
    /// if the https connection fails (what Docker does for its
    /// "insecure-registries"); settled by the first answer.
    may_fall_back: bool,
    insecure: bool,
    registry: String,
    repository: String,
    credentials: Option<(String, String)>,
    /// The `Authorization` value in use (a bearer token or basic).
    authorization: Option<String>,
}

impl Client {
    /// Checks the scheme before anything goes on the wire.
    pub fn new(r: &Reference, opts: &PullOptions) -> Result<Client, PullError> {
        if r.scheme == Some(Scheme::Http) && !opts.insecure {
            return Err(PullError::InsecureRefused {
                registry: r.registry.clone(),
            });
        }
        let scheme = r.scheme.unwrap_or(Scheme::Https);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .timeout_write(READ_TIMEOUT)
            // Refuses http:// URLs, redirects included, unless allowed.
            .https_only(!opts.insecure)
            .redirects(8)
            // Blobs are often redirected to a CDN or object store: the
            // registry's credentials must not follow them there.
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("runtimed/", env!("CARGO_PKG_VERSION")))
            .build();
        let credentials = match (&opts.username, &opts.password) {
            (Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
            (None, _) => None,
        };
        Ok(Client {
            agent,
            base: format!("{}://{}", scheme.as_str(), r.api_host()),
            may_fall_back: opts.insecure && r.scheme.is_none(),
            insecure: opts.insecure,
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            credentials,
            authorization: None,
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `GET <base><path>` with authentication: on a 401 the challenge is
    /// answered once per request (a token that expired mid-pull is renewed)
    /// and a second 401 is `Unauthorized`. Answers other than 401 come back
    /// as they are, errors included, for the caller to name.
    pub fn get(&mut self, path: &str, accept: Option<&str>) -> Result<ureq::Response, PullError> {
        let mut answered = false;
        loop {
            let resp = self.send(path, accept)?;
            if resp.status() != 401 {
                return Ok(resp);
            }
            let what = format!("{}{}", self.registry, path);
            if answered {
                let detail = error_detail(resp);
                return Err(PullError::Unauthorized {
                    what,
                    reason: format!(
                        "the registry refused the {} ({detail})",
                        self.credential_words()
                    ),
                });
            }
            self.answer_challenge(&what, &resp)?;
            answered = true;
        }
    }

    fn credential_words(&self) -> &'static str {
        let bearer = self
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer "));
        match (bearer, self.credentials.is_some()) {
            (true, true) => "token issued for the given credentials",
            (true, false) => {
                "anonymous token (give a username and password if the repository is private)"
            }
            (false, true) => "given username and password",
            (false, false) => "request",
        }
    }

    fn send(&mut self, path: &str, accept: Option<&str>) -> Result<ureq::Response, PullError> {
        loop {
            let url = format!("{}{path}", self.base);
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(auth) = &self.authorization {
                req = req.set("Authorization", auth);
            }
            tracing::debug!(%url, "registry request");
            match req.call() {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                    self.may_fall_back = false;
                    return Ok(resp);
                }
                Err(ureq::Error::Transport(t)) => {
                    let plain_http_may_work = matches!(
                        t.kind(),
                        ureq::ErrorKind::ConnectionFailed
                            | ureq::ErrorKind::Io
                            | ureq::ErrorKind::BadStatus
                            | ureq::ErrorKind::BadHeader
                    );
                    if self.may_fall_back && plain_http_may_work {
                        self.may_fall_back = false;
                        tracing::debug!(registry = %self.registry, error = %t, "https failed; trying plain http (insecure)");
                        self.base = self.base.replacen("https://", "http://", 1);
                        continue;
                    }
                    let mut e = transport_error(&self.registry, &t);
                    if let PullError::Connect { reason, .. } = &mut e {
                        if !self.insecure && reason.contains("tls") {
                            reason.push_str(
                                " (if the registry speaks plain http, allow it with insecure, --insecure)",
                            );
                        }
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Sets `authorization` from the 401's challenges: a bearer token from
    /// the realm (with basic credentials if given), or basic credentials.
    fn answer_challenge(&mut self, what: &str, resp: &ureq::Response) -> Result<(), PullError> {
        let challenges: Vec<Challenge> = resp
            .all("WWW-Authenticate")
            .into_iter()
            .flat_map(auth::parse_challenges)
            .collect();
        let unauthorized = |reason: String| PullError::Unauthorized {
            what: what.to_string(),
            reason,
        };
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(what, bearer)?;
            self.authorization = Some(format!("Bearer {token}"));
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some((u, p)) = &self.credentials else {
                return Err(unauthorized(
                    "the registry asks for a username and password (basic auth); none given".into(),
                ));
            };
            self.authorization = Some(auth::basic(u, p));
            return Ok(());
        }
        let offered: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(unauthorized(if offered.is_empty() {
            "401 without a WWW-Authenticate challenge".into()
        } else {
            format!("unsupported auth scheme(s) {}", offered.join(", "))
        }))
    }

    fn fetch_token(&self, what: &str, c: &Challenge) -> Result<String, PullError> {
        let unauthorized = |reason: String| PullError::Unauthorized {
            what: what.to_string(),
            reason,
        };
        let Some(realm) = c.param("realm") else {
            return Err(unauthorized("bearer challenge without a realm".into()));
        };
        if realm.starts_with("http://") && !self.insecure {
            return Err(unauthorized(format!(
                "token server {realm} is plain http; allow it with insecure (--insecure)"
            )));
        }
        if !realm.starts_with("http://") && !realm.starts_with("https://") {
            return Err(unauthorized(format!("token realm {realm:?} is not a URL")));
        }
        let default_scope = format!("repository:{}:pull", self.repository);
        let scope = c.param("scope").unwrap_or(&default_scope);
        let mut req = self.agent.get(realm).query("scope", scope);
        if let Some(service) = c.param("service") {
            req = req.query("service", service);
        }
        if let Some((u, p)) = &self.credentials {
            req = req.set("Authorization", &auth::basic(u, p));
        }
        let token_host = host_of(realm);
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => {
                let detail = error_detail(r);
                let who = match &self.credentials {
                    Some((u, _)) => format!("user {u:?}"),
                    None => "anonymous access (no credentials given)".into(),
                };
                return Err(unauthorized(format!(
                    "token server {realm} refused {who} ({detail})"
                )));
            }
            Err(ureq::Error::Transport(t)) => return Err(transport_error(&token_host, &t)),
        };
        let body = read_small(resp).map_err(|e| PullError::Transfer {
            what: format!("token from {realm}"),
            source: e,
        })?;
        let parsed: auth::TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            unauthorized(format!("token server {realm} answered no JSON token: {e}"))
        })?;
        parsed
            .into_token()
            .ok_or_else(|| unauthorized(format!("token server {realm} answered no token")))
    }
}

/// A transport failure, naming the host it was on.
fn transport_error(default_host: &str, t: &ureq::Transport) -> PullError {
    let host = t
        .url()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| default_host.to_string());
    if t.kind() == ureq::ErrorKind::InsecureRequestHttpsOnly {
        return PullError::InsecureRefused { registry: host };
    }
    let mut reason = t.kind().to_string().to_lowercase();
    if let Some(m) = t.message() {
        reason.push_str(": ");
        reason.push_str(m);
    }
    if let Some(s) = std::error::Error::source(t) {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
    }
    PullError::Connect { host, reason }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

pub fn read_small(resp: ureq::Response) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_reader().take(SMALL_BODY).read_to_end(&mut out)?;
    Ok(out)
}

/// A registry error body (`{"errors":[{"code","message"}]}`) in one line,
/// else the status and the start of the body.
pub fn error_detail(resp: ureq::Response) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = resp.status();
    let body = read_small(resp).unwrap_or_default();
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        if !e.errors.is_empty() {
            return e
                .errors
                .iter()
                .map(|x| format!("{}: {}", x.code, x.message))
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        format!("status {status}, empty body")
    } else {
        format!(
            "status {status}: {}",
            text.chars().take(200).collect::<String>()
        )
    }
}
