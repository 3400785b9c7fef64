//! The embedded SQLite store (`airlock.db`): flows, queryable by the CLI.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::events::{FlowRecord, ThreatRecord};

#[derive(Debug, thiserror::Error)]
#[error("store {path}: {source}")]
pub struct StoreError {
    path: String,
    source: rusqlite::Error,
}

pub struct Store {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flows (
    id TEXT PRIMARY KEY,
    timestamp TEXT NOT NULL,
    listener TEXT NOT NULL,
    host TEXT,
    method TEXT,
    status INTEGER,
    action TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_timestamp ON flows(timestamp);
CREATE INDEX IF NOT EXISTS flows_host ON flows(host);
CREATE TABLE IF NOT EXISTS threats (
    rowid INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    threat_type TEXT NOT NULL,
    pattern TEXT NOT NULL,
    dest TEXT NOT NULL,
    action TEXT NOT NULL,
    flow_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threats_timestamp ON threats(timestamp);
";

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store {
            conn,
            path: path.display().to_string(),
        })
    }

    /// Opens an existing store for reading (the CLI, while an instance writes).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        Ok(Store {
            conn,
            path: path.display().to_string(),
        })
    }

    /// (requests, blocked, failed, threats) recorded since `since` (RFC 3339).
    pub fn counts_since(&self, since: &str) -> Result<(u64, u64, u64, u64), StoreError> {
        self.conn
            .query_row(
                "SELECT
                   (SELECT COUNT(*) FROM flows WHERE timestamp >= ?1),
                   (SELECT COUNT(*) FROM flows WHERE timestamp >= ?1 AND action = 'blocked'),
                   (SELECT COUNT(*) FROM flows WHERE timestamp >= ?1 AND action = 'failed'),
                   (SELECT COUNT(*) FROM threats WHERE timestamp >= ?1)",
                params![since],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? as u64,
                    ))
                },
            )
            .map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    pub fn insert_flows(&mut self, flows: &[(&FlowRecord, &str)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError {
            path: self.path.clone(),
            source: e,
        })?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO flows (id, timestamp, listener, host, method, status, action, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(|e| StoreError {
                    path: self.path.clone(),
                    source: e,
                })?;
            for (f, json) in flows {
                stmt.execute(params![
                    f.id,
                    f.timestamp,
                    f.listener,
                    f.host,
                    f.method,
                    f.status,
                    f.action.as_str(),
                    json
                ])
                .map_err(|e| StoreError {
                    path: self.path.clone(),
                    source: e,
                })?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn insert_threats(&mut self, threats: &[(&ThreatRecord, &str)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO threats (timestamp, threat_type, pattern, dest, action, flow_id, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for (t, json) in threats {
                let kind = serde_json::to_value(t.threat_type).ok();
                let action = serde_json::to_value(t.action).ok();
                stmt.execute(params![
                    t.timestamp,
                    kind.as_ref().and_then(|v| v.as_str()),
                    t.pattern,
                    t.dest,
                    action.as_ref().and_then(|v| v.as_str()),
                    t.flow_id,
                    json
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Drops flows older than `days`.
    pub fn apply_retention(&self, days: u32) -> Result<usize, StoreError> {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        self.conn
            .execute(
                "DELETE FROM flows WHERE timestamp < ?1",
                params![super::events::rfc3339(cutoff)],
            )
            .and_then(|n| {
                self.conn
                    .execute(
                        "DELETE FROM threats WHERE timestamp < ?1",
                        params![super::events::rfc3339(cutoff)],
                    )
                    .map(|m| n + m)
            })
            .map_err(|e| self.err(e))
    }

    /// Keeps the live data under `max_mb` by dropping the oldest tenth of the flows while it
    /// is over (freed pages are reused, so the file stops growing).
    pub fn enforce_size(&self, max_mb: u64) -> Result<(), StoreError> {
        for _ in 0..10 {
            let used: i64 = self
                .conn
                .query_row(
                    "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            if (used as u64) <= max_mb * 1024 * 1024 {
                return Ok(());
            }
            self.conn
                .execute(
                    "DELETE FROM flows WHERE rowid IN (SELECT rowid FROM flows ORDER BY timestamp LIMIT (SELECT MAX(COUNT(*) / 10, 1) FROM flows))",
                    [],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
