//! The daemon-wide budget of captured exec output. A captured exec (and
//! `/v1/run`) keeps its program's output in the daemon's memory until its
//! answer has been sent, so the sum of what all of them keep is what
//! clients can make the daemon hold. Before a capture starts, its worst
//! case (the output cap of both streams) is reserved here, against a total
//! and a per-tenant share; the reservation is released when the answer
//! has been sent or its client went away. A request the budget cannot take
//! is refused before anything runs (503 `output_budget_exhausted`): an
//! all-or-nothing reservation cannot deadlock, where captures that grew
//! their reservations bit by bit could each hold part of the budget and
//! wait for the rest (docs/limits.md gives the bound).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bytes reserved in all and per tenant.
#[derive(Debug, Default)]
struct Used {
    total: u64,
    tenants: HashMap<String, u64>,
}

#[derive(Debug)]
pub struct OutputBudget {
    total: u64,
    per_tenant: u64,
    used: Mutex<Used>,
}

impl OutputBudget {
    pub fn new(total: u64, per_tenant: u64) -> Arc<OutputBudget> {
        Arc::new(OutputBudget {
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
        let grant = |bytes| Grant {
            budget: self.clone(),
            tenant: tenant.to_string(),
            bytes,
        };
        if n == 0 {
            return Some(grant(0));
        }
        let mut used = self.used.lock().ok()?;
        let mine = used.tenants.get(tenant).copied().unwrap_or(0);
        if used.total + n > self.total || mine + n > self.per_tenant {
            return None;
        }
        used.total += n;
        *used.tenants.entry(tenant.to_string()).or_default() += n;
        drop(used);
        Some(grant(n))
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
    budget: Arc<OutputBudget>,
    tenant: String,
    bytes: u64,
}

impl Grant {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.budget.release(&self.tenant, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_tenant_shares_hold() {
        let b = OutputBudget::new(100, 60);
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
}
