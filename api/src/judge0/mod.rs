//! The Judge0-compatible layer's model: Judge0 CE 1.13's submission
//! attributes, units and status ids over the judge service's submissions,
//! so that existing Judge0 clients work unchanged (docs/judge0.md). Pure
//! functions; the handlers are in `routes::judge0`.
//!
//! - [`request`]: a Judge0 submission body → a [`judges::Submission`] of
//!   one test, or Judge0's 422 body `{"attribute": ["message"]}`;
//! - [`status`]: the 14 statuses, and which one a submission has;
//! - [`response`]: `?fields=`, base64, and the attributes in Judge0's
//!   units (seconds as decimal strings, KB, ISO 8601);
//! - [`info`]: language ids and names, `/about`, `/config_info`.
//!
//! One Judge0 submission is one test of ours. Its token is its id in the
//! judge service (a UUID v4, as Judge0's tokens are), so it survives a
//! restart like every other submission.

pub mod info;
pub mod request;
pub mod response;
pub mod status;

use std::io::Read;

/// The Judge0 version whose API this layer follows (`GET /about`; the
/// `judge0` Python client picks its language aliases by it).
pub const JUDGE0_VERSION: &str = "1.13.1";

/// Submissions one batch may hold, to create or to get (Judge0's default
/// `max_submission_batch_size`).
pub const MAX_BATCH: usize = 20;

/// Judge0's answer, word for word, when an attribute cannot be sent as
/// JSON text without base64 (Judge0 API docs, "Get a Submission").
pub const NOT_UTF8_ONE: &str = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";

/// The same for a batch.
pub const NOT_UTF8_BATCH: &str = "some attributes for one or more submissions cannot be converted to UTF-8, use base64_encoded=true query parameter";

/// A new token: a random UUID v4 (RFC 9562, section 5.4), as Judge0's.
/// The judge service keeps it as the submission's id.
pub fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(format_uuid(&b))
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// Whether `s` has the shape of a token (so that anything else is not
/// looked up at all: the native API's ids are not Judge0 tokens).
pub fn is_token(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests;
