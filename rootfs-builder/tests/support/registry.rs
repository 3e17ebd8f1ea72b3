//! Test support for registry pulls: a real `docker-registry` (Debian's
//! distribution 2.x) on loopback with storage in a temp dir, optionally
//! with token auth against a token server run here (JWTs signed RS256 by
//! `openssl dgst` with a self-signed certificate the registry trusts);
//! small images built here and pushed with the v2 upload API; and a tiny
//! HTTP server for registries that misbehave on purpose.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rootfs_builder::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The tool's path; fails the test when it is missing (the tests that need
/// one are `#[ignore]`d unless asked for; they never return early and pass).
pub fn tool(test: &str, name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{test} did not run: {name} not found (apt-get install {package})")
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- images

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// OCI media types, uncompressed layer.
    Oci,
    /// Docker schema 2 media types, gzip layer.
    Docker,
}

/// One single-layer image, as bytes ready to push.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub layer: Vec<u8>,
    pub layer_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_type: &'static str,
    pub arch: String,
}

/// A layer with `/etc/greeting` (`greeting`), `/bin/hello` (a script) and
/// an empty `/data/`, and a config with `GREETING=<greeting>` in its env.
pub fn test_image(flavor: Flavor, arch: &str, greeting: &str) -> TestImage {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, data: &[u8], kind: tar::EntryType| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_entry_type(kind);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("data/", 0o755, b"", tar::EntryType::Directory);
    add("etc/", 0o755, b"", tar::EntryType::Directory);
    add(
        "etc/greeting",
        0o644,
        format!("{greeting}\n").as_bytes(),
        tar::EntryType::Regular,
    );
    add("bin/", 0o755, b"", tar::EntryType::Directory);
    add(
        "bin/hello",
        0o755,
        b"#!/bin/sh\ncat /etc/greeting\n",
        tar::EntryType::Regular,
    );
    let tar_bytes = b.into_inner().unwrap();
    let diff_id = Digest::of(&tar_bytes);
    let (layer, layer_type, config_type, manifest_type) = match flavor {
        Flavor::Oci => (
            tar_bytes,
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.config.v1+json",
            OCI_MANIFEST,
        ),
        Flavor::Docker => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar_bytes).unwrap();
            (
                gz.finish().unwrap(),
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.container.image.v1+json",
                DOCKER_MANIFEST,
            )
        }
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", format!("GREETING={greeting}")],
            "Cmd": ["/bin/hello"],
            "WorkingDir": "/data",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": "rootfs-builder tests"}],
    }))
    .unwrap();
    let layer_digest = Digest::of(&layer);
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    TestImage {
        layer_digest,
        layer,
        config_digest,
        config,
        manifest_digest: Digest::of(&manifest),
        manifest,
        manifest_type,
        arch: arch.into(),
    }
}

/// A manifest list / index over `images` (media type `media_type`).
pub fn index_of(media_type: &str, images: &[&TestImage]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|i| {
            serde_json::json!({
                "mediaType": i.manifest_type,
                "digest": i.manifest_digest.to_string(),
                "size": i.manifest.len(),
                "platform": {"architecture": i.arch, "os": "linux"},
            })
        })
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    }))
    .unwrap()
}

// ------------------------------------------------------------------ push

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// Uploads a blob (POST an upload, then one PUT with `?digest=`).
pub fn push_blob(base: &str, repo: &str, bytes: &[u8], auth: Option<&str>) {
    let a = agent();
    let digest = Digest::of(bytes);
    let mut req = a.post(&format!("{base}/v2/{repo}/blobs/uploads/"));
    if let Some(t) = auth {
        req = req.set("Authorization", t);
    }
    let resp = req
        .send_bytes(b"")
        .unwrap_or_else(|e| panic!("start upload to {repo}: {e}"));
    assert_eq!(resp.status(), 202, "start upload to {repo}");
    let location = resp
        .header("Location")
        .expect("upload Location")
        .to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let mut req = a
        .put(&format!("{location}{sep}digest={digest}"))
        .set("Content-Type", "application/octet-stream");
    if let Some(t) = auth {
        req = req.set("Authorization", t);
    }
    let resp = req
        .send_bytes(bytes)
        .unwrap_or_else(|e| panic!("upload blob {digest} to {repo}: {e}"));
    assert_eq!(resp.status(), 201, "upload blob {digest}");
}

/// PUTs a manifest; returns the digest the registry reports.
pub fn push_manifest(
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    auth: Option<&str>,
) -> Digest {
    let mut req = agent()
        .put(&format!("{base}/v2/{repo}/manifests/{reference}"))
        .set("Content-Type", media_type);
    if let Some(t) = auth {
        req = req.set("Authorization", t);
    }
    let resp = match req.send_bytes(bytes) {
        Ok(r) => r,
        Err(ureq::Error::Status(s, r)) => {
            panic!(
                "push manifest {repo}:{reference}: {s}: {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => panic!("push manifest {repo}:{reference}: {e}"),
    };
    assert_eq!(resp.status(), 201, "push manifest {repo}:{reference}");
    resp.header("Docker-Content-Digest")
        .expect("Docker-Content-Digest")
        .parse()
        .unwrap()
}

/// Pushes config, layer and manifest; returns the registry's digest.
pub fn push_image(
    base: &str,
    repo: &str,
    tag: &str,
    img: &TestImage,
    auth: Option<&str>,
) -> Digest {
    push_blob(base, repo, &img.layer, auth);
    push_blob(base, repo, &img.config, auth);
    push_manifest(base, repo, tag, img.manifest_type, &img.manifest, auth)
}

// -------------------------------------------------------------- registry

/// Token auth settings for `Registry::start`.
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub cert_pem: PathBuf,
}

/// A `docker-registry` process on 127.0.0.1; killed (by pid) on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(binary: &Path, auth: Option<&TokenAuth>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut last_log = String::new();
        // A port picked free may be taken before the registry binds it.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let auth_yaml = match auth {
                Some(a) => format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    a.realm,
                    a.service,
                    a.issuer,
                    a.cert_pem.display()
                ),
                None => String::new(),
            };
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: runtimed-test-secret\n\
                 {auth_yaml}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(binary)
                .arg("serve")
                .arg(&config_path)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
            // Up when /v2/ answers (200, or 401 with auth on); a registry
            // that exits (port taken) is retried on another port.
            let mut exited = false;
            for _ in 0..600 {
                if child.try_wait().unwrap().is_some() {
                    exited = true;
                    break;
                }
                match agent().get(&format!("http://{addr}/v2/")).call() {
                    Ok(_) | Err(ureq::Error::Status(_, _)) => {
                        return Registry { child, addr, dir };
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !exited {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker-registry did not answer on {addr} within 30 s; its log:\n{last_log}"
                );
            }
            let _ = child.wait();
        }
        panic!("docker-registry did not start; its last log:\n{last_log}");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------ tiny HTTP

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Query parameters, percent-decoded.
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hex, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sent without `Content-Length`, the end of the body being the end
    /// of the connection (as a streaming server or proxy may).
    pub until_close: bool,
}

impl HttpResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
            until_close: false,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn until_close(mut self) -> HttpResponse {
        self.until_close = true;
        self
    }
}

type Handler = dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 answering one request per connection
/// with `handler`; every request is kept in `requests`. Stops on drop.
pub struct TinyServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<HttpRequest>>>,
    /// Connections accepted, requests or not.
    pub connections: Arc<AtomicUsize>,
    /// Body bytes the server managed to write, over all answers.
    pub body_bytes_sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TinyServer {
    pub fn start(
        handler: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static,
    ) -> TinyServer {
        TinyServer::start_on("127.0.0.1", handler)
    }

    /// On another loopback address (`127.0.0.2`): another host, as far as
    /// origins go.
    pub fn start_on(
        ip: &str,
        handler: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static,
    ) -> TinyServer {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let body_bytes_sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stopped) = (requests.clone(), stop.clone());
        let (conns, sent) = (connections.clone(), body_bytes_sent.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                conns.fetch_add(1, Ordering::SeqCst);
                let (handler, reqs, sent) = (handler.clone(), reqs.clone(), sent.clone());
                std::thread::spawn(move || serve_one(conn, &*handler, &reqs, &sent));
            }
        });
        TinyServer {
            addr,
            requests,
            connections,
            body_bytes_sent,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(conn: TcpStream, handler: &Handler, reqs: &Mutex<Vec<HttpRequest>>, sent: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let req = HttpRequest {
        method,
        target,
        headers,
        body,
    };
    reqs.lock().unwrap().push(req.clone());
    let resp = handler(&req);
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", resp.status);
    if !resp.until_close {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    if req.method != "HEAD" {
        // In pieces, counting what got out before the client hung up.
        for piece in resp.body.chunks(64 << 10) {
            if conn.write_all(piece).is_err() {
                break;
            }
            sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
    }
    let _ = conn.flush();
}

// ----------------------------------------------------------------- tokens

/// Issues registry tokens: a self-signed RSA certificate (made with the
/// openssl CLI) that the registry trusts as its root bundle; each token is
/// a JWT signed RS256 with its key, carrying the certificate in `x5c`.
pub struct TokenIssuer {
    pub dir: tempfile::TempDir,
    pub issuer: String,
    pub service: String,
    cert_der_b64: String,
    openssl: PathBuf,
}

impl TokenIssuer {
    pub fn new(openssl: &Path) -> TokenIssuer {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(openssl)
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=runtimed-test-token-issuer",
            "-days",
            "2",
        ]);
        run(&[
            "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
        ]);
        let der = std::fs::read(dir.path().join("cert.der")).unwrap();
        TokenIssuer {
            cert_der_b64: base64::engine::general_purpose::STANDARD.encode(der),
            dir,
            openssl: openssl.to_path_buf(),
            issuer: "runtimed-test-issuer".into(),
            service: "runtimed-test-registry".into(),
        }
    }

    pub fn cert_pem(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// A token for `sub` granting `access` = [(repository, actions)].
    pub fn mint(&self, sub: &str, access: &[(String, Vec<String>)]) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]});
        let access: Vec<serde_json::Value> = access
            .iter()
            .map(|(name, actions)| {
                serde_json::json!({"type": "repository", "name": name, "actions": actions})
            })
            .collect();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": rootfs_builder::atomic_write::random_hex(),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap()),
            b64(&serde_json::to_vec(&claims).unwrap())
        );
        let mut child = Command::new(&self.openssl)
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.dir.path().join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "openssl dgst -sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("{signing_input}.{}", b64(&out.stdout))
    }
}

/// Who may have what from `token_server`.
#[derive(Clone)]
pub struct TokenPolicy {
    /// user → (password, may access repositories).
    pub users: BTreeMap<String, (String, bool)>,
}

/// A token server on loopback: demands basic credentials; a known user with
/// the right password gets a token for the scopes asked (an empty access
/// list if the user may not access repositories); anyone else gets a 401.
pub fn token_server(issuer: Arc<TokenIssuer>, policy: TokenPolicy) -> TinyServer {
    TinyServer::start(move |req| {
        let unauthorized = || {
            HttpResponse::new(401, r#"{"details":"incorrect username or password"}"#)
                .header("WWW-Authenticate", r#"Basic realm="token""#)
        };
        let Some(user) = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return unauthorized();
        };
        let (name, password) = user.split_once(':').unwrap_or((&user, ""));
        let Some((want, allowed)) = policy.users.get(name) else {
            return unauthorized();
        };
        if want != password {
            return unauthorized();
        }
        let q = req.query();
        if !q
            .iter()
            .any(|(k, v)| k == "service" && *v == issuer.service)
        {
            return HttpResponse::new(400, "wrong service");
        }
        let mut access = Vec::new();
        if *allowed {
            for (_, scope) in q.iter().filter(|(k, _)| k == "scope") {
                // repository:<name>:<actions>
                let mut it = scope.splitn(3, ':');
                if let (Some("repository"), Some(n), Some(a)) = (it.next(), it.next(), it.next()) {
                    access.push((n.to_string(), a.split(',').map(String::from).collect()));
                }
            }
        }
        let token = issuer.mint(name, &access);
        let body = serde_json::json!({"token": token, "expires_in": 300});
        HttpResponse::new(200, serde_json::to_vec(&body).unwrap())
            .header("Content-Type", "application/json")
    })
}
