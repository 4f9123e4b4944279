//! Housekeeping: expiry cleanup, enforcing the cap, clearing.

use super::Cache;
use crate::digest::Algorithm;
use crate::error::Result;
use crate::layout;
use crate::log::Level;
use crate::metrics::EvictionReason;
use serde::{Deserialize, Serialize};

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Expired entries removed.
    pub expired_removed: u64,
    /// Entries evicted to get under the high watermark.
    pub evicted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Whether the index was compacted.
    pub compacted: bool,
}

impl Cache {
    /// Removes expired entries (except pinned ones, ones being read and content referenced by
    /// a cached manifest); returns how many. Their bytes are freed.
    pub fn clear_expired(&mut self) -> Result<u64> {
        let now = self.now();
        let mut removed: Vec<crate::journal::Record> = Vec::new();
        let mut result = Ok(());
        // Removing an expired manifest makes the expired content it referenced removable too,
        // so repeat until a pass finds nothing (at most one pass per level of references).
        'passes: loop {
            let victims: Vec<_> = self
                .index
                .expired(now)
                .filter(|&id| self.index.get(id).is_candidate())
                .collect();
            if victims.is_empty() {
                break;
            }
            for id in victims {
                match self.evict(id, EvictionReason::Expired) {
                    Ok(r) => removed.push(r),
                    Err(e) => {
                        result = Err(e);
                        break 'passes;
                    }
                }
            }
        }
        let n = removed.len() as u64;
        if result.is_err() {
            self.journal_best_effort(&removed);
            result?;
        }
        // The removals are done when their records are durable, not before.
        self.journal_removals(removed)?;
        self.maybe_compact();
        Ok(n)
    }

    /// Removes expired entries, evicts down to the low watermark if usage is above the high
    /// one, flushes access records and compacts the index.
    pub fn cleanup(&mut self) -> Result<CleanupReport> {
        let before = self.index.bytes();
        let expired_removed = self.clear_expired()?;
        let mut evicted = 0;
        if self.index.bytes() > self.config.high_bytes() {
            let removed = self.evict_until(self.config.low_bytes())?;
            evicted = removed.len() as u64;
            self.journal_removals(removed)?;
        }
        self.flush()?;
        // Everything above is durable: a failed compaction does not undo it, it is reported.
        let compacted = match self.compact() {
            Ok(()) => true,
            Err(e) => {
                self.warn("compaction failed", &[("error", &e.to_string())]);
                false
            }
        };
        if let Err(e) = self.remove_idle_partials() {
            self.warn(
                "could not remove partial downloads",
                &[("error", &e.to_string())],
            );
        }
        Ok(CleanupReport {
            expired_removed,
            evicted,
            bytes_freed: before - self.index.bytes(),
            compacted,
        })
    }

    /// Removes the partial downloads nobody is continuing: they are not indexed or counted
    /// against the cap, so cleanup is what bounds them. One in use is open (a file storage
    /// holds it locked), so `open_partial` refuses it and it stays; names the core does not
    /// write are left alone.
    fn remove_idle_partials(&mut self) -> Result<u64> {
        let mut removed = 0;
        for algorithm in Algorithm::ALL {
            for name in self.storage.list(&layout::partials_dir(algorithm))? {
                let Some(digest) = layout::parse_entry_name(algorithm, &name) else {
                    continue;
                };
                if let Some((temp, len)) =
                    self.storage.open_partial(&layout::partial_path(&digest))?
                {
                    self.storage.abort_temp(temp)?;
                    removed += 1;
                    self.log.log(
                        Level::Info,
                        "removed a partial download",
                        &[("blob", &digest.to_string()), ("bytes", &len.to_string())],
                    );
                }
            }
        }
        Ok(removed)
    }

    /// Removes every entry and tag mapping, and their bytes.
    pub fn clear(&mut self) -> Result<()> {
        self.content_changing()?;
        let ids: Vec<_> = self.index.iter().map(|(id, _)| id).collect();
        for id in ids {
            let key = self.index.get(id).key();
            self.storage.remove(&layout::entry_path(&key))?;
            self.index.remove(id);
        }
        let refs: Vec<String> = self.tags.sorted_references().into_iter().cloned().collect();
        for r in refs {
            self.tags.remove(&r);
        }
        // One snapshot of the empty state replaces every removal record.
        self.compact()?;
        Ok(())
    }
}
