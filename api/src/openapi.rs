//! The OpenAPI document, generated from the handlers' annotations
//! (utoipa) and completed here with what every operation shares (the
//! bearer token, the errors any request can meet), so that it matches
//! what the daemon answers: CI fuzzes the daemon against it
//! (`.ci/schemathesis.sh`). `docs/openapi.json` is a checked-in copy;
//! `UPDATE_OPENAPI=1 cargo test -p api openapi` rewrites it, and a test
//! fails while it is stale.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "runtimed",
        description = "Sandbox runtime daemon: sessions, exec, PTY, files, one-shot runs, images, judge. \
            Every error is an HTTP status and a JSON body `{code, message}`; docs/api.md lists the codes."
    ),
    paths(
        crate::routes::sessions::create,
        crate::routes::sessions::list,
        crate::routes::sessions::get,
        crate::routes::sessions::delete,
        crate::routes::exec::exec,
        crate::routes::pty::open,
        crate::routes::pty::attach,
        crate::routes::pty::list,
        crate::routes::pty::delete,
        crate::routes::files::get_root,
        crate::routes::files::get,
        crate::routes::files::put,
        crate::routes::files::delete,
        crate::routes::files::archive_get,
        crate::routes::files::archive_put,
        crate::routes::run::run,
        crate::routes::images::list,
        crate::routes::images::build,
        crate::routes::images::pull,
        crate::routes::images::import,
        crate::routes::images::delete,
        crate::routes::judge::submit,
        crate::routes::judge::get,
        crate::routes::judge::events,
        crate::routes::judge::languages,
        crate::routes::system::healthz,
        crate::routes::system::metrics,
        serve,
    ),
    components(schemas(crate::error::ErrorBody))
)]
struct Doc;

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

/// The document as served at `/v1/openapi.json`.
pub fn document() -> Value {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    complete(&mut v);
    v
}

/// What a response of each shared status means (the codes are in
/// docs/api.md's table).
fn shared_response(status: &str) -> &'static str {
    match status {
        "400" => "invalid_request: a malformed path, query or body",
        "401" => "unauthorized: no or a bad token (TCP), or a socket peer not allowed",
        "403" => "host_not_allowed, origin_not_allowed: a TCP request whose Host or Origin is not the listener's",
        "408" => "body_timeout: the body was not whole within request_body_timeout_seconds",
        "413" => "body_too_large: the body is over max_body_bytes",
        "415" => "unsupported_media_type: a JSON body needs Content-Type: application/json",
        "500" => {
            "internal_error: a failure of the daemon or the host (logged, never the request's)"
        }
        _ => "",
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// Adds to every operation what the router and the auth layer answer for
/// any of them, names operations uniquely (`sessions_get`, not `get`),
/// and adds the schemas written by hand.
fn complete(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token of the config's [[tokens]] (TCP). Socket peers need none."
        }
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(judge_schemas());
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_method, op) in item.iter_mut() {
            complete_operation(path, op);
        }
    }
}

fn complete_operation(path: &str, op: &mut Value) {
    // utoipa tags an operation with its module path: keep the module.
    let module = op["tags"][0]
        .as_str()
        .and_then(|t| t.rsplit("::").next())
        .unwrap_or("system")
        .to_string();
    op["tags"] = json!([module]);
    if let Some(id) = op["operationId"].as_str() {
        op["operationId"] = json!(format!("{module}_{id}"));
    }
    // Every request on TCP has its Host and Origin checked.
    let mut shared = vec!["403", "500"];
    // Everything but liveness and this document is behind the token.
    if !matches!(path, "/healthz" | "/v1/openapi.json") {
        op["security"] = json!([{"bearer": []}]);
        shared.push("401");
    }
    // Any parameter or body can be malformed (bad UTF-8 in a path, a
    // query that does not parse, JSON that does not fit the schema).
    let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
    let body = op.get("requestBody").cloned();
    if has_params || body.is_some() {
        shared.push("400");
    }
    // A body is read within a timeout, after a reservation from the
    // daemon's body budget (the image import streams to disk instead).
    let budgeted = body.is_some() && path != "/v1/images/import";
    if let Some(body) = body {
        shared.push("413");
        if body["content"].get("application/json").is_some() {
            shared.push("415");
        }
    }
    if budgeted {
        shared.push("408");
    }
    binary_bodies(&mut op["requestBody"]);
    let responses = op["responses"].as_object_mut();
    let Some(responses) = responses else { return };
    for r in responses.values_mut() {
        binary_bodies(r);
    }
    for status in shared {
        responses
            .entry(status)
            .or_insert_with(|| error_response(shared_response(status)));
    }
    if budgeted {
        const BODY_BUDGET: &str = "body_budget_exhausted: request bodies fill the daemon's budget or this tenant's share now (Retry-After)";
        let r = responses
            .entry("503")
            .or_insert_with(|| error_response(BODY_BUDGET));
        if let Some(d) = r["description"]
            .as_str()
            .filter(|d| !d.contains("body_budget"))
        {
            r["description"] = json!(format!("{d}; {BODY_BUDGET}"));
        }
    }
    // utoipa leaves descriptions empty where an annotation gave none; an
    // error response says which codes it carries.
    for (status, r) in responses.iter_mut() {
        if r["description"].as_str().is_some_and(str::is_empty) {
            let d = match shared_response(status) {
                "" if status.starts_with('2') => "success",
                "" => "an error: see docs/api.md for the codes",
                d => d,
            };
            r["description"] = json!(d);
        }
    }
}

/// Raw bytes (a file, a tar) are a binary string, not utoipa's array of
/// integers for `Vec<u8>`.
fn binary_bodies(body: &mut Value) {
    let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    for (media, c) in content.iter_mut() {
        if media == "application/octet-stream" || media == "application/x-tar" {
            c["schema"] = json!({"type": "string", "format": "binary"});
        }
    }
}

/// Schemas written by hand: the judge's request, from `judges::pipeline`
/// (its ranges are the constants the judge checks, so they cannot
/// drift), and the items of the streamed answers (SSE, NDJSON).
fn judge_schemas() -> Map<String, Value> {
    use judges::pipeline::ranges;
    let range = |r: &std::ops::RangeInclusive<u64>, description: &str| json!({"type": "integer", "minimum": r.start(), "maximum": r.end(), "description": description});
    let text = |max: usize, description: &str| json!({"type": "string", "maxLength": max, "description": description});
    let mut m = Map::new();
    m.insert(
        "JudgeLimits".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "Limits of every test; omitted ones take the defaults (docs/judges.md).",
            "properties": {
                "cpu_time_ms": range(&ranges::CPU_TIME_MS, "CPU time of one test"),
                "wall_time_ms": {
                    "oneOf": [{"type": "null"}, range(&ranges::WALL_TIME_MS, "wall time of one test (default: twice the CPU time plus 1 s)")]
                },
                "memory_mb": range(&ranges::MEMORY_MB, "memory of the program, MiB"),
                "output_mb": range(&ranges::OUTPUT_MB, "stdout and stderr, each, MiB"),
            }
        }),
    );
    m.insert(
        "JudgeTest".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "stdin": text(ranges::TEST_BYTES, "the test's input"),
                "expected_output": {
                    "oneOf": [{"type": "null"}, text(ranges::TEST_BYTES, "compared by the checker; null: the run only has to succeed")]
                }
            }
        }),
    );
    m.insert(
        "JudgeChecker".into(),
        json!({
            "description": "How outputs are compared (default `tokens`).",
            "oneOf": [
                {
                    "type": "object", "additionalProperties": false, "required": ["kind"],
                    "properties": {"kind": {"type": "string", "enum": ["exact", "tokens"]}}
                },
                {
                    "type": "object", "additionalProperties": false, "required": ["kind"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["float"]},
                        "tolerance": {"type": "number", "minimum": 0, "maximum": judges::compare::TOLERANCE_MAX}
                    }
                },
                {
                    "type": "object", "additionalProperties": false,
                    "required": ["kind", "language", "source"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["custom"]},
                        "language": {"type": "string"},
                        "source": text(ranges::SOURCE_BYTES, "the checker's program")
                    }
                }
            ]
        }),
    );
    m.insert(
        "JudgeSubmission".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["language", "source", "tests"],
            "properties": {
                "language": {"type": "string", "description": "a name of GET /v1/judge/languages"},
                "source": text(ranges::SOURCE_BYTES, "the program"),
                "tests": {
                    "type": "array",
                    "minItems": ranges::TESTS.start(),
                    "maxItems": ranges::TESTS.end(),
                    "items": {"$ref": "#/components/schemas/JudgeTest"}
                },
                "limits": {"$ref": "#/components/schemas/JudgeLimits"},
                "checker": {"$ref": "#/components/schemas/JudgeChecker"},
                "stop_on_first_failure": {"type": "boolean"}
            }
        }),
    );
    m.insert(
        "JudgeEvent".into(),
        json!({
            "type": "object",
            "description": "One server-sent event of a judgement; `data` is the event as JSON.",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": ["compile_start", "compile_done", "test_start", "test_done", "done", "lagged"]},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "id": {"type": "string"},
                "retry": {"type": "integer"}
            }
        }),
    );
    m.insert(
        "ExecStreamLine".into(),
        json!({
            "type": "object",
            "description": "One NDJSON line of `exec?stream=true`: `stdout`/`stderr` with base64 `data` as output arrives, then one `exit` with the fields of ExecResult (or `error` with `code` and `message`).",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": ["stdout", "stderr", "exit", "error"]},
                "data": {"type": "string", "contentEncoding": "base64"},
                "code": {"type": "string"},
                "message": {"type": "string"}
            }
        }),
    );
    m.insert(
        "BuildEvent".into(),
        json!({
            "type": "object",
            "description": "One NDJSON line of an image build (`step_start`, `log`, `step_done`, ..., then `done`, or `error` with `code` and `message`; docs/images.md).",
            "required": ["type"],
            "properties": {"type": {"type": "string"}}
        }),
    );
    m.insert(
        "JudgeSubmissionView".into(),
        json!({
            "type": "object",
            "description": "A submission: `status` queued (with `queue_position`), running, or done (with `verdict`, `tests`, ...; docs/judges.md).",
            "required": ["id", "status", "language", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["queued", "running", "done"]},
                "language": {"type": "string"},
                "created_at": {"type": "integer", "description": "unix seconds"},
                "finished_at_ms": {"type": "integer"},
                "queue_position": {"type": "integer", "minimum": 0}
            }
        }),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_uniquely_and_errors_are_documented() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "{method} {path}: {id} twice");
                let r = &op["responses"];
                assert!(r.get("500").is_some(), "{method} {path}: no 500");
                if path.starts_with("/v1/sessions") {
                    assert!(r.get("401").is_some(), "{method} {path}: no 401");
                    assert!(r.get("400").is_some(), "{method} {path}: no 400");
                }
                for (status, resp) in r.as_object().unwrap() {
                    assert!(
                        !resp["description"].as_str().unwrap_or("").is_empty(),
                        "{method} {path} {status}: no description"
                    );
                }
            }
        }
        let create = &doc["paths"]["/v1/sessions"]["post"]["responses"];
        for s in ["400", "413", "415"] {
            assert!(create.get(s).is_some(), "POST /v1/sessions: no {s}");
        }
    }

    #[test]
    fn judge_ranges_come_from_the_judge() {
        let doc = document();
        let l = &doc["components"]["schemas"]["JudgeLimits"]["properties"];
        assert_eq!(
            l["output_mb"]["maximum"],
            json!(judges::pipeline::ranges::OUTPUT_MB.end())
        );
        assert_eq!(
            l["cpu_time_ms"]["minimum"],
            json!(judges::pipeline::ranges::CPU_TIME_MS.start())
        );
    }
}
