//! Durable state in SQLite (the data dir's `runtimed.db`): one row per
//! session, written on create, on activity (coarsely) and on removal, so a
//! restarted daemon knows which sessions it had.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("state database lock poisoned")]
    Poisoned,
}

/// One session as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub tenant: String,
    pub state: String,
    pub image: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub idle_timeout: Option<u64>,
    pub last_activity: i64,
    /// The create request's limits, env and labels (JSON).
    pub request: String,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS sessions (
                id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                state TEXT NOT NULL,
                image TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER,
                idle_timeout INTEGER,
                last_activity INTEGER NOT NULL,
                request TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS sessions_tenant ON sessions(tenant);
             CREATE TABLE IF NOT EXISTS judge_submissions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                tenant TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                request TEXT NOT NULL,
                result TEXT,
                finished_at INTEGER
             );
             CREATE INDEX IF NOT EXISTS judge_submissions_state ON judge_submissions(state);
             CREATE INDEX IF NOT EXISTS judge_submissions_finished
                ON judge_submissions(state, tenant, finished_at);",
        )
        .map_err(open_err)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    pub fn insert(&self, r: &SessionRow) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("INSERT INTO sessions (id, tenant, state, image, created_at, expires_at, idle_timeout, last_activity, request)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?
            .execute(params![
                r.id,
                r.tenant,
                r.state,
                r.image,
                r.created_at,
                r.expires_at,
                r.idle_timeout.map(|v| v as i64),
                r.last_activity,
                r.request
            ])?;
        Ok(())
    }

    pub fn set_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("UPDATE sessions SET state = ?2 WHERE id = ?1")?
            .execute(params![id, state])?;
        Ok(())
    }

    pub fn touch(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("UPDATE sessions SET last_activity = ?2 WHERE id = ?1")?
            .execute(params![id, at])?;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("DELETE FROM sessions WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let conn = self.conn()?;
        let row = conn
            .query_row(
                "SELECT id, tenant, state, image, created_at, expires_at, idle_timeout, last_activity, request
                 FROM sessions WHERE id = ?1",
                params![id],
                row_of,
            )
            .optional()?;
        Ok(row)
    }

    pub fn all(&self) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, tenant, state, image, created_at, expires_at, idle_timeout, last_activity, request
             FROM sessions ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], row_of)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// After a restart: every session still marked running has lost its
    /// processes (they end with their daemon); returns their ids.
    pub fn mark_running_lost(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let ids: Vec<String> = {
            let mut stmt = conn.prepare("SELECT id FROM sessions WHERE state != 'lost'")?;
            let ids = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            ids
        };
        conn.execute(
            "UPDATE sessions SET state = 'lost' WHERE state != 'lost'",
            [],
        )?;
        Ok(ids)
    }
}

/// One judge submission as stored: accepted (`queued`), being judged
/// (`running`) or finished (`done`, with its result).
#[derive(Clone, Debug, PartialEq)]
pub struct SubmissionRow {
    pub id: String,
    pub tenant: String,
    pub state: String,
    pub created_at: i64,
    /// The submission as accepted (JSON).
    pub request: String,
    /// The finished result (JSON).
    pub result: Option<String>,
    /// Unix time (ms) the result was stored.
    pub finished_at_ms: Option<i64>,
}

impl Store {
    /// Records an accepted submission (before the client hears of it: a
    /// restart then loses nothing that was accepted).
    pub fn insert_submission(&self, r: &SubmissionRow) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO judge_submissions (id, tenant, state, created_at, request, result, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.id,
                r.tenant,
                r.state,
                r.created_at,
                r.request,
                r.result,
                r.finished_at_ms
            ])?;
        Ok(())
    }

    pub fn set_submission_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("UPDATE judge_submissions SET state = ?2 WHERE id = ?1")?
            .execute(params![id, state])?;
        Ok(())
    }

    pub fn finish_submission(&self, id: &str, result: &str, at_ms: i64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "UPDATE judge_submissions SET state = 'done', result = ?2, finished_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, result, at_ms])?;
        Ok(())
    }

    pub fn submission(&self, id: &str) -> Result<Option<SubmissionRow>, StoreError> {
        let conn = self.conn()?;
        let row = conn
            .query_row(
                "SELECT id, tenant, state, created_at, request, result, finished_at
                 FROM judge_submissions WHERE id = ?1",
                params![id],
                submission_of,
            )
            .optional()?;
        Ok(row)
    }

    /// Submissions not finished (queued, or running when the daemon
    /// stopped), oldest first: what a restarted daemon judges again.
    pub fn unfinished_submissions(&self) -> Result<Vec<SubmissionRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, tenant, state, created_at, request, result, finished_at
             FROM judge_submissions WHERE state != 'done' ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([], submission_of)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl Store {
    /// Retention of finished submissions: deletes those that finished
    /// before `finished_before_ms` (Unix ms) and, of each tenant, all but
    /// the `keep_per_tenant` most recently finished. Submissions queued or
    /// running are never deleted. Returns how many went.
    pub fn sweep_submissions(
        &self,
        finished_before_ms: Option<i64>,
        keep_per_tenant: Option<usize>,
    ) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let mut gone = 0;
        if let Some(before) = finished_before_ms {
            gone += conn
                .prepare_cached(
                    "DELETE FROM judge_submissions WHERE state = 'done' AND finished_at < ?1",
                )?
                .execute(params![before])?;
        }
        if let Some(keep) = keep_per_tenant {
            gone += conn
                .prepare_cached(
                    "DELETE FROM judge_submissions WHERE seq IN (
                        SELECT seq FROM (
                            SELECT seq, ROW_NUMBER() OVER (
                                PARTITION BY tenant ORDER BY finished_at DESC, seq DESC) AS n
                            FROM judge_submissions WHERE state = 'done')
                        WHERE n > ?1)",
                )?
                .execute(params![keep as i64])?;
        }
        Ok(gone)
    }
}

fn submission_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubmissionRow> {
    Ok(SubmissionRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        state: r.get(2)?,
        created_at: r.get(3)?,
        request: r.get(4)?,
        result: r.get(5)?,
        finished_at_ms: r.get(6)?,
    })
}

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        state: r.get(2)?,
        image: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        idle_timeout: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
        last_activity: r.get(7)?,
        request: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> SessionRow {
        SessionRow {
            id: id.into(),
            tenant: "t".into(),
            state: "running".into(),
            image: "host".into(),
            created_at: 10,
            expires_at: Some(20),
            idle_timeout: None,
            last_activity: 10,
            request: "{}".into(),
        }
    }

    #[test]
    fn rows_survive_reopen_and_running_become_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open(&path).unwrap();
            s.insert(&row("a")).unwrap();
            s.insert(&row("b")).unwrap();
            s.touch("a", 15).unwrap();
            s.remove("b").unwrap();
            assert!(s.insert(&row("a")).is_err(), "duplicate id must fail");
        }
        let s = Store::open(&path).unwrap();
        let a = s.get("a").unwrap().unwrap();
        assert_eq!(a.last_activity, 15);
        assert!(s.get("b").unwrap().is_none());
        assert_eq!(s.mark_running_lost().unwrap(), vec!["a".to_string()]);
        assert_eq!(s.get("a").unwrap().unwrap().state, "lost");
        assert!(s.mark_running_lost().unwrap().is_empty());
    }

    #[test]
    fn submissions_survive_reopen_and_unfinished_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let sub = |id: &str| SubmissionRow {
            id: id.into(),
            tenant: "t".into(),
            state: "queued".into(),
            created_at: 1,
            request: format!("{{\"id\":\"{id}\"}}"),
            result: None,
            finished_at_ms: None,
        };
        {
            let s = Store::open(&path).unwrap();
            for id in ["c", "a", "b"] {
                s.insert_submission(&sub(id)).unwrap();
            }
            s.set_submission_state("a", "running").unwrap();
            s.finish_submission("b", "{\"verdict\":\"ACCEPTED\"}", 1234)
                .unwrap();
            assert!(
                s.insert_submission(&sub("a")).is_err(),
                "duplicate id must fail"
            );
        }
        let s = Store::open(&path).unwrap();
        let ids: Vec<String> = s
            .unfinished_submissions()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["c", "a"], "in the order they were accepted");
        let b = s.submission("b").unwrap().unwrap();
        assert_eq!(b.state, "done");
        assert_eq!(b.result.as_deref(), Some("{\"verdict\":\"ACCEPTED\"}"));
        assert_eq!(b.finished_at_ms, Some(1234));
        assert!(s.submission("zz").unwrap().is_none());
    }

    #[test]
    fn retention_deletes_old_and_surplus_finished_submissions_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let add = |id: &str, tenant: &str, state: &str, finished: Option<i64>| {
            s.insert_submission(&SubmissionRow {
                id: id.into(),
                tenant: tenant.into(),
                state: "queued".into(),
                // Accepted long ago, all of them.
                created_at: 1,
                request: "{}".into(),
                result: None,
                finished_at_ms: None,
            })
            .unwrap();
            match (state, finished) {
                ("done", Some(at)) => s.finish_submission(id, "{}", at).unwrap(),
                (state, _) => s.set_submission_state(id, state).unwrap(),
            }
        };
        add("a-old", "a", "done", Some(1_000));
        add("a-1", "a", "done", Some(5_000));
        add("a-2", "a", "done", Some(6_000));
        add("a-3", "a", "done", Some(7_000));
        add("a-queued", "a", "queued", None);
        add("a-running", "a", "running", None);
        add("b-1", "b", "done", Some(5_500));
        let ids = || {
            let mut v: Vec<String> = ["a-old", "a-1", "a-2", "a-3", "a-queued", "a-running", "b-1"]
                .into_iter()
                .filter(|id| s.submission(id).unwrap().is_some())
                .map(String::from)
                .collect();
            v.sort();
            v
        };
        // By age: finished before 2000 ms.
        assert_eq!(s.sweep_submissions(Some(2_000), None).unwrap(), 1);
        assert_eq!(ids(), ["a-1", "a-2", "a-3", "a-queued", "a-running", "b-1"]);
        // By count: two per tenant, the most recently finished.
        assert_eq!(s.sweep_submissions(None, Some(2)).unwrap(), 1);
        assert_eq!(ids(), ["a-2", "a-3", "a-queued", "a-running", "b-1"]);
        // Everything finished goes; queued and running stay.
        assert_eq!(s.sweep_submissions(Some(i64::MAX), Some(0)).unwrap(), 3);
        assert_eq!(ids(), ["a-queued", "a-running"]);
        assert_eq!(s.sweep_submissions(Some(i64::MAX), Some(0)).unwrap(), 0);
    }
}
