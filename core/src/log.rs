//! Structured, leveled logs, delivered to the host (the WIT `log` import). The core never prints.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal events (eviction, recovery).
    Info,
    /// Something was wrong and was handled (corruption found, torn journal tail dropped).
    Warn,
    /// An operation failed.
    Error,
}

/// Receives the core's log records.
pub trait LogSink: Send {
    /// One record: a message plus key/value fields.
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]);
}

/// Discards everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLog;

impl LogSink for NoLog {
    fn log(&self, _: Level, _: &str, _: &[(&str, &str)]) {}
}

/// Keeps records in memory; clones share them. For tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryLog {
    records: Arc<Mutex<Vec<(Level, String)>>>,
}

impl MemoryLog {
    /// Records so far, as `(level, "message k=v …")`.
    pub fn records(&self) -> Vec<(Level, String)> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl LogSink for MemoryLog {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let mut line = message.to_owned();
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v}"));
        }
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((level, line));
    }
}
