//! Byte budgets: what clients can make the daemon hold, counted against a
//! daemon-wide total and a per-tenant share. Two are kept (docs/limits.md,
//! "The daemon's memory"): captured exec and `/v1/run` output (a capture
//! reserves the output cap of both streams before it starts, and keeps it
//! until its answer has been sent or its client went away; refused: 503
//! `output_budget_exhausted`; file, listing and archive reads of the files
//! API take from it as they go), and request bodies being read or handled
//! ([`crate::request_body`]; refused: 503 `body_budget_exhausted`).
//!
//! A reservation is all or nothing and never waits: a request the budget
//! cannot take is refused before anything is read or run. Holders that
//! grew their reservations bit by bit could each hold part of the budget
//! and wait for the rest (a deadlock); holders that never wait cannot.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Bytes reserved in all and per tenant.
#[derive(Debug, Default)]
struct Used {
    total: u64,
    tenants: HashMap<String, u64>,
}

/// A total and a per-tenant share of bytes; see the module comment.
#[derive(Debug)]
pub struct ByteBudget {
    total: u64,
    per_tenant: u64,
    used: Mutex<Used>,
}

impl ByteBudget {
    pub fn new(total: u64, per_tenant: u64) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            total,
            per_tenant: per_tenant.min(total),
            used: Mutex::new(Used::default()),
        })
    }

    /// The most one tenant may hold (so the most one request can ask for).
    pub fn per_tenant(&self) -> u64 {
        self.per_tenant
    }

    /// Bytes reserved right now (all tenants).
    pub fn in_use(&self) -> u64 {
        self.used.lock().map_or(0, |u| u.total)
    }

    /// `n` bytes for `tenant` if both the total and the tenant's share
    /// have room.
    pub fn try_reserve(self: &Arc<Self>, tenant: &str, n: u64) -> Option<Grant> {
        self.take(tenant, n).then(|| Grant {
            budget: self.clone(),
            tenant: tenant.to_string(),
            bytes: n,
        })
    }

    fn take(&self, tenant: &str, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(mut used) = self.used.lock() else {
            return false;
        };
        let mine = used.tenants.get(tenant).copied().unwrap_or(0);
        if used.total.saturating_add(n) > self.total || mine.saturating_add(n) > self.per_tenant {
            return false;
        }
        used.total += n;
        *used.tenants.entry(tenant.to_string()).or_default() += n;
        true
    }

    fn release(&self, tenant: &str, n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut used) = self.used.lock() {
            used.total = used.total.saturating_sub(n);
            if let Some(mine) = used.tenants.get_mut(tenant) {
                *mine = mine.saturating_sub(n);
                if *mine == 0 {
                    used.tenants.remove(tenant);
                }
            }
        }
    }
}

/// Reserved bytes; released when dropped.
#[derive(Debug)]
pub struct Grant {
    budget: Arc<ByteBudget>,
    tenant: String,
    bytes: u64,
}

impl Grant {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds `n` bytes to the reservation if the budget has room (all or
    /// nothing, without waiting, like [`ByteBudget::try_reserve`]).
    pub fn try_grow(&mut self, n: u64) -> bool {
        let grown = self.budget.take(&self.tenant, n);
        if grown {
            self.bytes += n;
        }
        grown
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.budget.release(&self.tenant, self.bytes);
    }
}

/// A grant is what the files API's reads may hold ([`crate::workspace`]).
impl crate::workspace::Allowance for Grant {
    fn take(&mut self, bytes: u64) -> bool {
        self.try_grow(bytes)
    }
}

/// `data` as a body's bytes that keep `grant` until the last reference to
/// them is gone. hyper keeps a body's last frame in its write buffer after
/// the body itself was dropped (until the client reads it), so a grant held
/// by the body, as [`hold`] does, would go before the bytes do.
pub fn paid_bytes(data: Vec<u8>, grant: Grant) -> Bytes {
    struct Paid {
        data: Vec<u8>,
        _grant: Grant,
    }
    impl AsRef<[u8]> for Paid {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }
    Bytes::from_owner(Paid {
        data,
        _grant: grant,
    })
}

/// The answer, holding `grant` until it has been sent (or dropped, when
/// its client went away).
pub fn hold(resp: Response, grant: Grant) -> Response {
    let (parts, body) = resp.into_parts();
    Response::from_parts(
        parts,
        Body::new(Held {
            body,
            _grant: grant,
        }),
    )
}

struct Held {
    body: Body,
    _grant: Grant,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_tenant_shares_hold() {
        let b = ByteBudget::new(100, 60);
        let a1 = b.try_reserve("a", 50).unwrap();
        assert!(b.try_reserve("a", 20).is_none(), "tenant share of 60");
        let b1 = b.try_reserve("b", 50).unwrap();
        assert!(b.try_reserve("c", 1).is_none(), "total of 100");
        assert_eq!(b.in_use(), 100);
        drop(a1);
        assert_eq!(b.in_use(), 50);
        let c1 = b.try_reserve("c", 30).unwrap();
        let c2 = b.try_reserve("c", 20).unwrap();
        assert_eq!(c1.bytes() + c2.bytes(), 50);
        assert_eq!(b.in_use(), 100);
        assert!(b.try_reserve("c", 0).is_some(), "nothing always fits");
        drop((b1, c1, c2));
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn a_grant_grows_within_the_shares_or_not_at_all() {
        let b = ByteBudget::new(100, 60);
        let mut a = b.try_reserve("a", 40).unwrap();
        assert!(!a.try_grow(21), "tenant share of 60");
        assert_eq!((a.bytes(), b.in_use()), (40, 40));
        assert!(a.try_grow(20));
        let _b1 = b.try_reserve("b", 30).unwrap();
        let mut b2 = b.try_reserve("b", 0).unwrap();
        assert!(!b2.try_grow(11), "total of 100");
        assert!(b2.try_grow(10));
        assert_eq!(b.in_use(), 100);
        drop(a);
        assert_eq!(b.in_use(), 40);
        assert!(b.try_reserve("a", u64::MAX).is_none(), "no overflow");
    }
}
