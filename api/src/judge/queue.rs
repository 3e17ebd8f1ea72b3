//! The judge's queue: bounded, and fair between tenants. Each tenant has
//! its own FIFO; tenants take turns (round-robin), so one tenant's burst
//! of submissions delays the others by at most one submission each. The
//! bound is global; the service also bounds each tenant's share of it
//! ([`FairQueue::tenant_len`]), so that one tenant cannot fill it and
//! lock the others out.

use std::collections::{HashMap, VecDeque};

/// The queue is at its bound.
#[derive(Debug, PartialEq, Eq)]
pub struct Full {
    pub capacity: usize,
}

#[derive(Debug)]
pub struct FairQueue<T> {
    per_tenant: HashMap<String, VecDeque<T>>,
    /// Tenants with queued items, in the order they are served next.
    turns: VecDeque<String>,
    len: usize,
    capacity: usize,
}

impl<T> FairQueue<T> {
    pub fn new(capacity: usize) -> FairQueue<T> {
        FairQueue {
            per_tenant: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items `tenant` has waiting.
    pub fn tenant_len(&self, tenant: &str) -> usize {
        self.per_tenant.get(tenant).map_or(0, VecDeque::len)
    }

    /// Tenants with items waiting.
    pub fn tenants(&self) -> usize {
        self.turns.len()
    }

    /// Appends to `tenant`'s FIFO, unless the queue is full.
    pub fn push(&mut self, tenant: &str, item: T) -> Result<(), Full> {
        if self.len >= self.capacity {
            return Err(Full {
                capacity: self.capacity,
            });
        }
        self.push_unbounded(tenant, item);
        Ok(())
    }

    /// Appends even past the bound (work accepted before a restart is
    /// never refused).
    pub fn push_unbounded(&mut self, tenant: &str, item: T) {
        let q = self.per_tenant.entry(tenant.to_string()).or_default();
        if q.is_empty() {
            self.turns.push_back(tenant.to_string());
        }
        q.push_back(item);
        self.len += 1;
    }

    /// The next item: the oldest of the tenant whose turn it is.
    pub fn pop(&mut self) -> Option<(String, T)> {
        let tenant = self.turns.pop_front()?;
        let q = self.per_tenant.get_mut(&tenant)?;
        let item = q.pop_front()?;
        self.len -= 1;
        if q.is_empty() {
            self.per_tenant.remove(&tenant);
        } else {
            self.turns.push_back(tenant.clone());
        }
        Some((tenant, item))
    }

    /// Position (0 = next) of the item `pred` picks, for status answers.
    pub fn position(&self, tenant: &str, pred: impl Fn(&T) -> bool) -> Option<usize> {
        let idx = self.per_tenant.get(tenant)?.iter().position(pred)?;
        // Each round serves one item of every tenant still waiting.
        let turn = self.turns.iter().position(|t| t == tenant)?;
        let ahead: usize = self
            .turns
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let n = self.per_tenant.get(t).map_or(0, VecDeque::len);
                let rounds = if i < turn { idx + 1 } else { idx };
                n.min(rounds)
            })
            .sum();
        Some(ahead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_take_turns_and_each_keeps_its_order() {
        let mut q = FairQueue::new(100);
        for i in 0..5 {
            q.push("greedy", format!("g{i}")).unwrap();
        }
        q.push("small", "s0".to_string()).unwrap();
        q.push("other", "o0".to_string()).unwrap();
        q.push("small", "s1".to_string()).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|(_, i)| i)).collect();
        assert_eq!(order, ["g0", "s0", "o0", "g1", "s1", "g2", "g3", "g4"]);
        assert!(q.is_empty());
    }

    #[test]
    fn the_bound_refuses_and_frees_up() {
        let mut q = FairQueue::new(2);
        q.push("a", 1).unwrap();
        q.push("b", 2).unwrap();
        assert_eq!(q.push("c", 3), Err(Full { capacity: 2 }));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(("a".to_string(), 1)));
        q.push("c", 3).unwrap();
        q.push_unbounded("d", 4);
        assert_eq!(q.len(), 3);
        assert_eq!(
            (q.tenant_len("c"), q.tenant_len("zz"), q.tenants()),
            (1, 0, 3)
        );
    }

    #[test]
    fn positions_follow_the_turns() {
        let mut q = FairQueue::new(100);
        q.push("a", 1).unwrap();
        q.push("a", 2).unwrap();
        q.push("a", 3).unwrap();
        q.push("b", 10).unwrap();
        // Served: 1, 10, 2, 3.
        assert_eq!(q.position("a", |&x| x == 1), Some(0));
        assert_eq!(q.position("b", |&x| x == 10), Some(1));
        assert_eq!(q.position("a", |&x| x == 2), Some(2));
        assert_eq!(q.position("a", |&x| x == 3), Some(3));
        assert_eq!(q.position("b", |&x| x == 99), None);
    }
}
