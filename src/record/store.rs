//! The embedded SQLite store (`airlock.db`): flows, queryable by the CLI.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::events::{FlowRecord, LlmRecord, ThreatRecord, TurnRecord};

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
CREATE TABLE IF NOT EXISTS llm_calls (
    rowid INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_usd REAL,
    flow_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_calls_timestamp ON llm_calls(timestamp);
CREATE INDEX IF NOT EXISTS threats_flow ON threats(flow_id);
CREATE TABLE IF NOT EXISTS conversations (
    rowid INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    session TEXT NOT NULL,
    flow_id TEXT,
    model TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL,
    source TEXT NOT NULL,
    listener TEXT NOT NULL,
    title TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_session ON conversations(session, rowid);
CREATE INDEX IF NOT EXISTS conversations_timestamp ON conversations(timestamp);
";

/// Turns listed for one session at most (the newest are kept).
pub const SESSION_TURNS_MAX: usize = 1000;

/// One conversation in the list of sessions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionSummary {
    pub session: String,
    pub started: String,
    pub last: String,
    pub turns: u64,
    pub models: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub source: String,
    pub listener: String,
    /// The start of the session's first user message.
    pub title: Option<String>,
}

/// Which flows `airlock logs` asks for; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct FlowQuery {
    /// RFC 3339: flows that started at or after it.
    pub since: Option<String>,
    /// A glob over the bare host name (`*.github.com`).
    pub host_glob: Option<String>,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub action: Option<String>,
    pub listener: Option<String>,
}

/// One group of `airlock usage`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageLine {
    pub key: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// The sum over calls with a known price; calls of unknown models add nothing.
    pub cost_usd: f64,
}

/// How `airlock usage` groups calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageBy {
    Model,
    Day,
    Provider,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            path: path.display().to_string(),
            source,
        };
        // Created private: SQLite gives its journal files the database file's mode.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                        Some(e.to_string()),
                    ))
                })?;
        }
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

    /// Gives back SQLite's page cache (it refills on the next writes).
    pub fn release_memory(&self) {
        let _ = self.conn.execute_batch("PRAGMA shrink_memory");
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

    pub fn insert_llm(&mut self, calls: &[(&LlmRecord, &str)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO llm_calls (timestamp, provider, model, input_tokens, output_tokens,
                     cache_read_tokens, cache_write_tokens, cost_usd, flow_id, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            for (r, json) in calls {
                stmt.execute(params![
                    r.timestamp,
                    r.provider,
                    r.model,
                    r.input_tokens as i64,
                    r.output_tokens as i64,
                    r.cache_read_tokens as i64,
                    r.cache_write_tokens as i64,
                    r.cost_usd,
                    r.flow_id,
                    json
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Conversation turns (`store.conversations`). `title` is the start of the first user
    /// message of a session's first turn.
    pub fn insert_turns(
        &mut self,
        turns: &[(&TurnRecord, &str, Option<String>)],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO conversations (timestamp, session, flow_id, model, input_tokens,
                     output_tokens, cost_usd, source, listener, title, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(err)?;
            for (t, json, title) in turns {
                stmt.execute(params![
                    t.timestamp,
                    t.session,
                    t.flow_id,
                    t.model,
                    t.input_tokens as i64,
                    t.output_tokens as i64,
                    t.cost_usd,
                    t.source,
                    t.listener,
                    title,
                    json
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The sessions with a turn since `since`, the most recently active first.
    pub fn sessions(
        &self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT session, MIN(timestamp), MAX(timestamp), COUNT(*),
                        GROUP_CONCAT(DISTINCT model), SUM(input_tokens), SUM(output_tokens),
                        TOTAL(cost_usd), MIN(source), MIN(listener),
                        (SELECT c2.title FROM conversations c2 WHERE c2.session = c.session
                           AND c2.title IS NOT NULL ORDER BY c2.rowid LIMIT 1)
                 FROM conversations c
                 WHERE ?1 IS NULL OR timestamp >= ?1
                 GROUP BY session ORDER BY MAX(rowid) DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![since, limit.min(i64::MAX as usize) as i64], |r| {
                Ok(SessionSummary {
                    session: r.get(0)?,
                    started: r.get(1)?,
                    last: r.get(2)?,
                    turns: r.get::<_, i64>(3)? as u64,
                    models: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    input_tokens: r.get::<_, i64>(5)? as u64,
                    output_tokens: r.get::<_, i64>(6)? as u64,
                    cost_usd: r.get(7)?,
                    source: r.get(8)?,
                    listener: r.get(9)?,
                    title: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The turns of one session, oldest first (the newest [`SESSION_TURNS_MAX`]).
    pub fn session_turns(&self, session: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT record FROM conversations WHERE session = ?1
                 ORDER BY rowid DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![session, SESSION_TURNS_MAX as i64], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let mut out = rows
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))?;
        out.reverse();
        Ok(out)
    }

    /// Turns since `since` stored after row `after`, optionally of one session: the newest
    /// `limit`, oldest first, with their row numbers.
    pub fn turns(
        &self,
        since: Option<&str>,
        session: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.records_oldest_first(
            "SELECT rowid, record FROM conversations
                 WHERE rowid > ?1 AND (?2 IS NULL OR timestamp >= ?2)
                   AND (?3 IS NULL OR session = ?3)
                 ORDER BY rowid DESC LIMIT ?4",
            params![after, since, session, limit.min(i64::MAX as usize) as i64],
        )
    }

    /// The turn of `session` recorded for the exchange `flow_id`.
    pub fn turn_of(&self, session: &str, flow_id: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT record FROM conversations WHERE session = ?1 AND flow_id = ?2
                 ORDER BY rowid DESC LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query_map(params![session, flow_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.next().transpose().map_err(|e| self.err(e))
    }

    /// The threat records of the given flows, oldest first.
    pub fn threats_of_flows(&self, flow_ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM threats WHERE flow_id = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        for id in flow_ids {
            let rows = stmt
                .query_map(params![id], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            for row in rows {
                out.push(row.map_err(|e| self.err(e))?);
            }
        }
        Ok(out)
    }

    /// LLM usage since `since` (RFC 3339; all when `None`), grouped, largest cost first.
    pub fn usage(&self, since: Option<&str>, by: UsageBy) -> Result<Vec<UsageLine>, StoreError> {
        // Timestamps are RFC 3339 UTC: the day is their first ten characters.
        let key = match by {
            UsageBy::Model => "COALESCE(model, '(unknown)')",
            UsageBy::Day => "substr(timestamp, 1, 10)",
            UsageBy::Provider => "provider",
        };
        let sql = format!(
            "SELECT {key} AS k, COUNT(*), SUM(input_tokens), SUM(output_tokens),
                    SUM(cache_read_tokens), SUM(cache_write_tokens), COALESCE(SUM(cost_usd), 0)
             FROM llm_calls WHERE timestamp >= ?1 GROUP BY k ORDER BY 7 DESC, k"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![since.unwrap_or("")], |row| {
                Ok(UsageLine {
                    key: row.get(0)?,
                    calls: row.get::<_, i64>(1)? as u64,
                    input_tokens: row.get::<_, i64>(2)? as u64,
                    output_tokens: row.get::<_, i64>(3)? as u64,
                    cache_read_tokens: row.get::<_, i64>(4)? as u64,
                    cache_write_tokens: row.get::<_, i64>(5)? as u64,
                    cost_usd: row.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Flow records matching `q` stored after row `after`: the newest `limit` of them,
    /// oldest first, each with its row number (to ask for what came after it).
    pub fn flows(
        &self,
        q: &FlowQuery,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.records_oldest_first(
            "SELECT rowid, record FROM flows
                 WHERE rowid > ?1
                   AND (?2 IS NULL OR timestamp >= ?2)
                   AND (?3 IS NULL OR host GLOB ?3)
                   AND (?4 IS NULL OR method = ?4)
                   AND (?5 IS NULL OR status = ?5)
                   AND (?6 IS NULL OR action = ?6)
                   AND (?7 IS NULL OR listener = ?7)
                 ORDER BY rowid DESC LIMIT ?8",
            params![
                after,
                q.since,
                q.host_glob,
                q.method,
                q.status,
                q.action,
                q.listener,
                limit.min(i64::MAX as usize) as i64
            ],
        )
    }

    /// LLM call records since `since` stored after row `after`: the newest `limit`, oldest
    /// first, with their row numbers.
    pub fn llm_calls(
        &self,
        since: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.records_oldest_first(
            "SELECT rowid, record FROM llm_calls
                 WHERE rowid > ?1 AND (?2 IS NULL OR timestamp >= ?2)
                 ORDER BY rowid DESC LIMIT ?3",
            params![after, since, limit.min(i64::MAX as usize) as i64],
        )
    }

    /// `(rowid, record)` rows of a query that selects the newest first, oldest first.
    fn records_oldest_first(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        out.reverse();
        Ok(out)
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
            .and_then(|n| {
                self.conn
                    .execute(
                        "DELETE FROM llm_calls WHERE timestamp < ?1",
                        params![super::events::rfc3339(cutoff)],
                    )
                    .map(|m| n + m)
            })
            .and_then(|n| {
                self.conn
                    .execute(
                        "DELETE FROM conversations WHERE timestamp < ?1",
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
            // Transcripts are the largest rows: they go the same way.
            self.conn
                .execute(
                    "DELETE FROM conversations WHERE rowid IN (SELECT rowid FROM conversations ORDER BY rowid LIMIT (SELECT MAX(COUNT(*) / 10, 1) FROM conversations))",
                    [],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
