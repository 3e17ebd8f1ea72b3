//! The daemon-wide budget of captured exec output. A captured exec (and
//! `/v1/run`) keeps its program's output in the daemon's memory until its
//! answer has been sent, so the sum of what all of them keep is what
//! clients can make the daemon hold. Every byte of buffer a capture grows
//! by is reserved here first, against a total and a per-tenant share; the
//! reservation is released when the answer is sent or its client goes
//! away. A capture that finds the budget spent stops reading its pipes
//! until bytes are released: the program blocks on its full pipe, like a
//! program whose streaming client reads slowly, and its wall timeout still
//! runs (docs/limits.md gives the resulting bound).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

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
    released: Notify,
}

impl OutputBudget {
    pub fn new(total: u64, per_tenant: u64) -> Arc<OutputBudget> {
        Arc::new(OutputBudget {
            total,
            per_tenant: per_tenant.min(total),
            used: Mutex::new(Used::default()),
            released: Notify::new(),
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

    /// `n` bytes for `tenant`, waiting until others release enough. `n`
    /// must not exceed [`Self::per_tenant`] (the callers' ranges make
    /// sure), or this waits until its caller gives up.
    pub async fn reserve(self: &Arc<Self>, tenant: &str, n: u64) -> Grant {
        loop {
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(g) = self.try_reserve(tenant, n) {
                return g;
            }
            released.await;
        }
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
        self.released.notify_waiters();
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
    /// Adds another grant of the same tenant to this one.
    pub fn absorb(&mut self, mut other: Grant) {
        if other.tenant == self.tenant && Arc::ptr_eq(&other.budget, &self.budget) {
            self.bytes += other.bytes;
            other.bytes = 0;
        }
    }

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
        let mut c1 = b.try_reserve("c", 30).unwrap();
        c1.absorb(b.try_reserve("c", 20).unwrap());
        assert_eq!(c1.bytes(), 50);
        assert_eq!(b.in_use(), 100);
        drop((b1, c1));
        assert_eq!(b.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_reservation_gets_released_bytes() {
        let b = OutputBudget::new(10, 10);
        let held = b.try_reserve("a", 10).unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve("b", 5).await.bytes() });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap(), 5);
    }
}
