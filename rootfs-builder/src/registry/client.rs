//! The HTTP side of a pull: one blocking `ureq` agent (rustls, webpki
//! roots, no transparent decompression: digests are over the bytes as
//! served), the scheme decision, redirects followed by hand (each target
//! checked, credentials only to the origin they were issued for), and the
//! 401 → challenge → token → retry dance of the distribution token spec.

use std::io::Read;
use std::time::Duration;

use url::Url;

use super::auth::{self, Challenge};
use super::destination::{self, Destinations};
use super::reference::{Reference, Scheme};
use super::{PullError, PullOptions};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Per socket read, so a slow but moving download of a big layer is fine.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Error bodies and token answers are small.
const SMALL_BODY: u64 = 64 << 10;
/// Redirects followed per request (Go's net/http, which Docker and
/// containerd use, stops after 10).
pub const MAX_REDIRECTS: u32 = 8;

pub struct Client {
    agent: ureq::Agent,
    /// `https://host:port/` or `http://host:port/`: the registry's origin,
    /// the only one its credentials and tokens are sent to.
    base: Url,
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

/// An answer and the URL it came from (after redirects).
pub struct Answer {
    pub resp: ureq::Response,
    pub url: Url,
}

/// Why `follow` stopped without an answer.
enum FollowError {
    /// ureq failed to get an answer from `url`; `redirected` says whether
    /// `url` came from a redirect.
    Transport {
        redirected: bool,
        error: Box<ureq::Transport>,
    },
    Pull(PullError),
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
        let base =
            Url::parse(&format!("{}://{}/", scheme.as_str(), r.api_host())).map_err(|e| {
                PullError::BadReference {
                    reference: r.to_string(),
                    reason: format!("registry {}: {e}", r.api_host()),
                }
            })?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .timeout_write(READ_TIMEOUT)
            // Refuses http:// URLs unless allowed.
            .https_only(!opts.insecure)
            // Redirects are followed in `follow`, which checks each target
            // and decides what credentials it gets.
            .redirects(0)
            // Every host is resolved by the policy, and connected to at
            // exactly the addresses it checked.
            .resolver(Destinations::new(r.api_host(), &opts.trusted_hosts))
            .user_agent(concat!("runtimed/", env!("CARGO_PKG_VERSION")))
            .build();
        let credentials = match (&opts.username, &opts.password) {
            (Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
            (None, _) => None,
        };
        Ok(Client {
            agent,
            base,
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
    pub fn get(&mut self, path: &str, accept: Option<&str>) -> Result<Answer, PullError> {
        let mut answered = false;
        loop {
            let a = self.send(path, accept)?;
            if a.resp.status() != 401 {
                return Ok(a);
            }
            let what = format!("{}{}", self.registry, path);
            if a.url.origin() != self.base.origin() {
                // A challenge from a host the registry sent us to: answering
                // it would hand the operator's credentials (or a token
                // server the other host names) to someone else.
                return Err(PullError::Unauthorized {
                    what,
                    reason: format!(
                        "redirected to {}, which asks for credentials; the registry's credentials are only sent to the registry",
                        shown(&a.url)
                    ),
                });
            }
            if answered {
                let detail = error_detail(a.resp);
                return Err(PullError::Unauthorized {
                    what,
                    reason: format!(
                        "the registry refused the {} ({detail})",
                        self.credential_words()
                    ),
                });
            }
            self.answer_challenge(&what, &a.resp)?;
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

    fn send(&mut self, path: &str, accept: Option<&str>) -> Result<Answer, PullError> {
        let what = format!("{}{}", self.registry, path);
        loop {
            let url = self.base.join(path).map_err(|e| PullError::BadReference {
                reference: what.clone(),
                reason: e.to_string(),
            })?;
            tracing::debug!(%url, "registry request");
            let auth = self.authorization.as_deref().map(|a| (&self.base, a));
            match self.follow(&what, url, accept, auth) {
                Ok(a) => {
                    self.may_fall_back = false;
                    return Ok(a);
                }
                Err(FollowError::Pull(e)) => return Err(e),
                Err(FollowError::Transport { redirected, error }) => {
                    let plain_http_may_work = matches!(
                        error.kind(),
                        ureq::ErrorKind::ConnectionFailed
                            | ureq::ErrorKind::Io
                            | ureq::ErrorKind::BadStatus
                            | ureq::ErrorKind::BadHeader
                    );
                    if self.may_fall_back && !redirected && plain_http_may_work {
                        self.may_fall_back = false;
                        tracing::debug!(registry = %self.registry, error = %error, "https failed; trying plain http (insecure)");
                        // http and https are both special schemes: the
                        // change cannot fail.
                        let _ = self.base.set_scheme("http");
                        continue;
                    }
                    let mut e = transport_error(&what, &self.registry, &error);
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

    /// GETs `url`, following up to `MAX_REDIRECTS` redirects by hand. Each
    /// target must be http(s) (plain http only when insecure); its host is
    /// checked by the resolver (`destination`) before any connection.
    /// `auth` (an origin and an `Authorization` value) is sent only to that
    /// origin: a redirect to another host, port or scheme (a blob's CDN)
    /// goes without it.
    fn follow(
        &self,
        what: &str,
        mut url: Url,
        accept: Option<&str>,
        auth: Option<(&Url, &str)>,
    ) -> Result<Answer, FollowError> {
        let mut redirected = false;
        let mut hop = 0;
        loop {
            let mut req = self.agent.request_url("GET", &url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some((origin, value)) = auth {
                if url.origin() == origin.origin() {
                    req = req.set("Authorization", value);
                }
            }
            let resp = match req.call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(FollowError::Transport {
                        redirected,
                        error: Box::new(t),
                    })
                }
            };
            let status = resp.status();
            let location = resp.header("Location").map(str::to_string);
            let (true, Some(location)) = (matches!(status, 301 | 302 | 303 | 307 | 308), location)
            else {
                return Ok(Answer { resp, url });
            };
            if hop == MAX_REDIRECTS {
                return Err(FollowError::Pull(PullError::Registry {
                    what: what.to_string(),
                    status,
                    detail: format!("more than {MAX_REDIRECTS} redirects"),
                }));
            }
            url = self
                .redirect_target(what, &url, &location)
                .map_err(FollowError::Pull)?;
            tracing::debug!(%url, status, "registry redirect");
            redirected = true;
            hop += 1;
        }
    }

    /// Where a `Location` leads, if a pull may go there at all (the host's
    /// addresses are checked when it is resolved).
    fn redirect_target(&self, what: &str, from: &Url, location: &str) -> Result<Url, PullError> {
        let refused = |url: String, reason: String| PullError::DestinationRefused {
            what: what.to_string(),
            url,
            reason,
        };
        let mut to = from.join(location).map_err(|e| {
            refused(
                location.chars().take(200).collect(),
                format!("redirect to an invalid URL: {e}"),
            )
        })?;
        match to.scheme() {
            "https" => {}
            "http" if self.insecure => {}
            "http" => {
                return Err(PullError::InsecureRefused {
                    registry: host_port(&to),
                })
            }
            other => {
                return Err(refused(
                    shown(&to),
                    format!("a redirect to a {other}: URL (only http and https are followed)"),
                ))
            }
        }
        // Userinfo in a remote-chosen URL would become a basic
        // Authorization header; the remote's own secrets, but the rule is
        // simpler without exceptions: none go out unless we chose them.
        let _ = to.set_username("");
        let _ = to.set_password(None);
        Ok(to)
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

    /// Asks the token server the registry's challenge names. The realm is
    /// chosen by the registry, so it goes through the same checks as a
    /// redirect (http(s) only, plain http only when insecure, its
    /// addresses checked); the given credentials go to it as basic auth
    /// (the distribution token spec: the registry delegates its auth
    /// there, as Docker Hub does to auth.docker.io), but not to where it
    /// redirects.
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
        let mut url = Url::parse(realm)
            .map_err(|e| unauthorized(format!("token realm {realm:?} is not a URL: {e}")))?;
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let default_scope = format!("repository:{}:pull", self.repository);
        let scope = c.param("scope").unwrap_or(&default_scope);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("scope", scope);
            if let Some(service) = c.param("service") {
                q.append_pair("service", service);
            }
        }
        let basic = self.credentials.as_ref().map(|(u, p)| auth::basic(u, p));
        let realm_origin = url.clone();
        let token_what = format!("token realm of {what}");
        let answer = match self.follow(
            &token_what,
            url,
            None,
            basic.as_deref().map(|b| (&realm_origin, b)),
        ) {
            Ok(a) => a,
            Err(FollowError::Pull(e)) => return Err(e),
            Err(FollowError::Transport { error, .. }) => {
                return Err(transport_error(
                    &token_what,
                    &host_port(&realm_origin),
                    &error,
                ))
            }
        };
        if answer.resp.status() >= 300 {
            let detail = error_detail(answer.resp);
            let who = match &self.credentials {
                Some((u, _)) => format!("user {u:?}"),
                None => "anonymous access (no credentials given)".into(),
            };
            return Err(unauthorized(format!(
                "token server {realm} refused {who} ({detail})"
            )));
        }
        let body = read_small(answer.resp).map_err(|e| PullError::Transfer {
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

/// `host:port` of a URL, for messages.
fn host_port(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => u.to_string(),
    }
}

/// A URL for messages: without its query (presigned CDN URLs carry
/// signatures there).
fn shown(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// A transport failure, naming the host it was on; a destination the
/// policy refused is `DestinationRefused`.
fn transport_error(what: &str, default_host: &str, t: &ureq::Transport) -> PullError {
    if let Some(refused) = std::error::Error::source(t).and_then(destination::refusal) {
        return PullError::DestinationRefused {
            what: what.to_string(),
            url: t.url().map(shown).unwrap_or_else(|| refused.host.clone()),
            reason: refused.to_string(),
        };
    }
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
