//! HTTP/1.1 to the daemon over its Unix socket (hyper's connection-level
//! client: there is no host to resolve and no pool worth keeping for a
//! process that makes a handful of requests), and the daemon's error body
//! `{code, message}` turned into [`HttpError::Api`].

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to runtimed at {}", socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP handshake with runtimed at {}", socket.display())]
    Handshake {
        socket: PathBuf,
        source: hyper::Error,
    },
    #[error("{method} {path}: sending the request")]
    Send {
        method: Method,
        path: String,
        source: hyper::Error,
    },
    #[error("{method} {path}: invalid request")]
    Build {
        method: Method,
        path: String,
        source: hyper::http::Error,
    },
    #[error("{what}: reading the response")]
    Body { what: String, source: hyper::Error },
    #[error("{what}: unexpected response from runtimed")]
    Decode {
        what: String,
        source: serde_json::Error,
    },
    #[error("encoding the request body")]
    Encode { source: serde_json::Error },
    /// The daemon refused: its stable code and message.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

impl HttpError {
    /// True when the daemon answered (as opposed to a failure to reach it).
    pub fn is_api(&self) -> bool {
        matches!(self, HttpError::Api { .. })
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            HttpError::Connect { source, .. } => Some(
                match source.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        "the socket is for root and the daemon's socket group"
                    }
                    _ => "is `runtimed serve` running? --socket or RUNTIMED_SOCKET name another socket",
                }
                .to_string(),
            ),
            _ => None,
        }
    }

    /// An error response: the daemon's `{code, message}`, or for anything
    /// else (a proxy, an old daemon) the status and the start of the body.
    pub fn from_response(status: StatusCode, body: &[u8]) -> HttpError {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            code: String,
            message: String,
        }
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => HttpError::Api {
                status: status.as_u16(),
                code: b.code,
                message: b.message,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text.chars().take(200).collect()
                };
                HttpError::Api {
                    status: status.as_u16(),
                    code: format!("http_{}", status.as_u16()),
                    message,
                }
            }
        }
    }
}

/// A complete response.
pub struct Reply {
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn is_json(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"))
    }
}

/// The daemon at one socket. Each request opens its own connection: the
/// daemon's streaming responses and WebSocket upgrades take a connection
/// over anyway, and a socket connect is cheap.
#[derive(Debug, Clone)]
pub struct Client {
    pub socket: PathBuf,
}

/// A request body and its content type.
pub struct Payload {
    pub content_type: &'static str,
    pub bytes: Bytes,
}

impl Payload {
    pub fn json(v: &impl Serialize) -> Result<Payload, HttpError> {
        let bytes = serde_json::to_vec(v).map_err(|source| HttpError::Encode { source })?;
        Ok(Payload {
            content_type: "application/json",
            bytes: bytes.into(),
        })
    }

    pub fn bytes(content_type: &'static str, bytes: Vec<u8>) -> Payload {
        Payload {
            content_type,
            bytes: bytes.into(),
        }
    }
}

impl Client {
    pub fn new(socket: PathBuf) -> Client {
        Client { socket }
    }

    /// A connected socket, for protocols hyper does not speak (WebSocket).
    pub async fn connect(&self) -> Result<UnixStream, HttpError> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|source| HttpError::Connect {
                socket: self.socket.clone(),
                source,
            })
    }

    /// Sends one request; any status but 2xx becomes an error with the
    /// daemon's code. The body is left to the caller (streams).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        payload: Option<Payload>,
    ) -> Result<Response<Incoming>, HttpError> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| HttpError::Handshake {
                socket: self.socket.clone(),
                source,
            })?;
        // The connection task ends with the response body (or with an
        // error that the request or the body read reports itself).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, HeaderValue::from_static("localhost"));
        let body = match payload {
            Some(p) => {
                builder = builder.header(CONTENT_TYPE, p.content_type);
                Full::new(p.bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let req = builder.body(body).map_err(|source| HttpError::Build {
            method: method.clone(),
            path: path.to_string(),
            source,
        })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| HttpError::Send {
                method: method.clone(),
                path: path.to_string(),
                source,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = read_body(resp, &format!("{method} {path}")).await?;
        Err(HttpError::from_response(status, &body))
    }

    /// One request, the whole response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        payload: Option<Payload>,
    ) -> Result<Reply, HttpError> {
        let what = format!("{method} {path}");
        let resp = self.send(method, path, payload).await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(resp, &what).await?;
        Ok(Reply { content_type, body })
    }

    /// One request with a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        payload: Option<Payload>,
    ) -> Result<T, HttpError> {
        let what = format!("{method} {path}");
        let reply = self.call(method, path, payload).await?;
        serde_json::from_slice(&reply.body).map_err(|source| HttpError::Decode { what, source })
    }
}

async fn read_body(resp: Response<Incoming>, what: &str) -> Result<Bytes, HttpError> {
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|source| HttpError::Body {
            what: what.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_the_daemon_code() {
        let e = HttpError::from_response(
            StatusCode::NOT_FOUND,
            br#"{"code":"session_not_found","message":"no session \"x\""}"#,
        );
        assert_eq!(e.to_string(), r#"session_not_found: no session "x""#);
        assert!(e.is_api());
    }

    #[test]
    fn other_error_bodies_show_the_status() {
        let e = HttpError::from_response(StatusCode::METHOD_NOT_ALLOWED, b"");
        assert_eq!(e.to_string(), "http_405: Method Not Allowed");
        let e = HttpError::from_response(StatusCode::BAD_GATEWAY, b"upstream\nbroke");
        assert_eq!(e.to_string(), "http_502: upstream\nbroke");
    }
}
