//! Debug tools: debug info, an integrity check that re-hashes everything, and repair.

use super::{Cache, EntryInfo, RecoveryReport, Stats};
use crate::config::Config;
use crate::digest::Algorithm;
use crate::error::Result;
use crate::journal::Record;
use crate::key::{Key, Kind};
use crate::layout;
use crate::metrics::MetricsSnapshot;
use crate::tags::TagMapping;
use serde::{Deserialize, Serialize};

/// One problem the integrity check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityIssue {
    /// The entry (`blob sha256:…`) or, for unindexed files, the path.
    pub what: String,
    /// What is wrong.
    pub detail: String,
}

/// The result of [`Cache::check_integrity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityReport {
    /// Entries re-hashed.
    pub checked: u64,
    /// Entries whose bytes matched.
    pub valid: u64,
    /// Entries whose bytes do not hash to their digest or have the wrong size, and damage
    /// found in the middle of a journal when it was read (`index/journal-<g>`: records were
    /// lost), listed until [`Cache::repair`] rewrites the index.
    pub corrupted: Vec<IntegrityIssue>,
    /// Entries whose file is gone.
    pub missing: Vec<IntegrityIssue>,
    /// Entries already quarantined.
    pub quarantined: Vec<IntegrityIssue>,
    /// Files in the content directories that the index does not list, and entries there that
    /// are not regular files (symbolic links, special files).
    pub unindexed: Vec<IntegrityIssue>,
    /// Whether nothing is wrong.
    pub healthy: bool,
}

/// The result of [`Cache::repair`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// What the check found before repairing.
    pub before: IntegrityReport,
    /// Corrupted or quarantined entries removed (to be fetched again).
    pub removed_corrupted: u64,
    /// Index rows without a file removed.
    pub removed_missing: u64,
    /// Unindexed files whose bytes matched their name, adopted.
    pub adopted: u64,
    /// Unindexed files that were invalid, removed.
    pub removed_unindexed: u64,
    /// Temp objects removed.
    pub temps_removed: u64,
    /// Unindexed entries that could not be read or removed (not regular files), left in place.
    pub left_alone: u64,
}

/// Everything a bug report needs, as one serializable value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DebugInfo {
    /// Settings in force.
    pub config: Config,
    /// Eviction policy in use.
    pub policy: String,
    /// Counts.
    pub stats: Stats,
    /// Metrics.
    pub metrics: MetricsSnapshot,
    /// Journal generation and records since the last snapshot.
    pub journal_generation: u64,
    /// Records in the current journal.
    pub journal_records: u64,
    /// What opening found.
    pub recovery: RecoveryReport,
}

/// A full export: debug info plus every entry and tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DebugExport {
    /// Summary.
    pub info: DebugInfo,
    /// Every content entry.
    pub contents: Vec<EntryInfo>,
    /// Every tag mapping.
    pub tags: Vec<TagMapping>,
}

impl Cache {
    /// A summary of the cache's state.
    pub fn debug_info(&self) -> DebugInfo {
        DebugInfo {
            config: self.config.clone(),
            policy: self.index.policy_name(),
            stats: self.stats(),
            metrics: self.metrics(),
            journal_generation: self.journal.generation(),
            journal_records: self.journal.records(),
            recovery: self.recovery.clone(),
        }
    }

    /// Debug info, contents and tags as pretty JSON (the seed's `ExportDebugInfo`; the host
    /// writes it where it likes).
    pub fn export_debug_json(&self) -> String {
        let export = DebugExport {
            info: self.debug_info(),
            contents: self.contents(),
            tags: self.tags(),
        };
        serde_json::to_string_pretty(&export).expect("debug export is plain data")
    }

    /// Re-hashes every stored entry and lists stray files. Changes nothing.
    pub fn check_integrity(&mut self) -> Result<IntegrityReport> {
        let mut report = IntegrityReport::default();
        let keys: Vec<(Key, u64, bool)> = self
            .index
            .iter()
            .map(|(_, e)| (e.key(), e.size(), e.is_quarantined()))
            .collect();
        for (key, size, quarantined) in keys {
            let what = key.to_string();
            if quarantined {
                report.quarantined.push(IntegrityIssue {
                    what,
                    detail: "failed verification earlier".into(),
                });
                continue;
            }
            report.checked += 1;
            let path = layout::entry_path(&key);
            if self.storage.size(&path)?.is_none() {
                report.missing.push(IntegrityIssue {
                    what,
                    detail: format!("{path} is missing"),
                });
                continue;
            }
            let (digest, stored) = self.hash_stored(&path, key.digest.algorithm())??;
            if stored != size {
                report.corrupted.push(IntegrityIssue {
                    what,
                    detail: format!("{stored} bytes stored, {size} indexed"),
                });
            } else if digest != key.digest {
                report.corrupted.push(IntegrityIssue {
                    what,
                    detail: format!("bytes hash to {digest}"),
                });
            } else {
                report.valid += 1;
            }
        }
        for kind in Kind::ALL {
            for algorithm in Algorithm::ALL {
                let dir = layout::algorithm_dir(kind, algorithm);
                // Hosts may list in any order; sorted, reports and adoption order agree everywhere.
                let mut names = self.storage.list(&dir)?;
                names.sort_unstable();
                for name in names {
                    let path = format!("{dir}/{name}");
                    // A symbolic link or special file is never content, whatever its name:
                    // reported even where an entry's file belongs (that entry is missing too).
                    if self.storage.size(&path)?.is_none() {
                        report.unindexed.push(IntegrityIssue {
                            what: path,
                            detail: "not a regular file".into(),
                        });
                        continue;
                    }
                    let indexed = layout::parse_entry_name(algorithm, &name)
                        .and_then(|digest| self.index.find(&Key { kind, digest }))
                        .is_some_and(|id| !self.index.get(id).is_quarantined());
                    if !indexed {
                        report.unindexed.push(IntegrityIssue {
                            what: path,
                            detail: "not in the index".into(),
                        });
                    }
                }
            }
        }
        // Damage found in the index files: records were lost, whatever the files hold now.
        report.corrupted.extend(self.index_damage.iter().cloned());
        report.healthy = report.corrupted.is_empty()
            && report.missing.is_empty()
            && report.quarantined.is_empty()
            && report.unindexed.is_empty();
        Ok(report)
    }

    /// Re-hashes every entry: `(valid, invalid)` where invalid lists corrupted and missing
    /// entries (the seed's `ValidateAllDigests`).
    pub fn validate_digests(&mut self) -> Result<(u64, Vec<String>)> {
        let r = self.check_integrity()?;
        let invalid = r
            .corrupted
            .iter()
            .chain(&r.missing)
            .chain(&r.quarantined)
            .map(|i| i.what.clone())
            .collect();
        Ok((r.valid, invalid))
    }

    /// Acts on what [`Cache::check_integrity`] finds: removes corrupted, quarantined and
    /// missing entries (so they can be fetched again), adopts unindexed regular files whose
    /// bytes match their name and removes the other unindexed entries (a symbolic link or
    /// special file itself, never its target), evicting down to the low watermark if adopted
    /// content took usage over the cap, and clears leftover temps when no blob writer is open.
    /// Valid entries are untouched.
    pub fn repair(&mut self) -> Result<RepairReport> {
        let before = self.check_integrity()?;
        self.content_changing()?;
        // Temps of writers still open are live downloads, not leftovers: leave them (a writer
        // dropped without commit or abort keeps temps until the next open clears them).
        let temps_removed = if self.open_writers == 0 {
            self.storage.clear_temps()?
        } else {
            0
        };
        let mut report = RepairReport {
            temps_removed,
            ..RepairReport::default()
        };
        let mut records = Vec::new();
        let by_name: std::collections::HashMap<String, crate::index::EntryId> = self
            .index
            .iter()
            .map(|(id, e)| (e.key().to_string(), id))
            .collect();
        let find = |_: &Cache, what: &str| by_name.get(what).copied();
        for issue in before.corrupted.iter().chain(&before.quarantined) {
            if let Some(id) = find(self, &issue.what) {
                let key = self.index.get(id).key();
                self.storage.remove(&layout::entry_path(&key))?;
                self.index.remove(id);
                records.push(Record::Remove { key });
                report.removed_corrupted += 1;
            }
        }
        for issue in &before.missing {
            if let Some(id) = find(self, &issue.what) {
                let key = self.index.remove(id).key();
                records.push(Record::Remove { key });
                report.removed_missing += 1;
            }
        }
        for issue in &before.unindexed {
            let parsed = issue.what.split('/').collect::<Vec<_>>();
            let key = match parsed.as_slice() {
                [kind_dir, alg, name] => {
                    let kind = Kind::ALL
                        .into_iter()
                        .find(|k| layout::kind_dir(*k) == *kind_dir);
                    let digest =
                        Algorithm::from_name(alg).and_then(|a| layout::parse_entry_name(a, name));
                    kind.zip(digest).map(|(kind, digest)| Key { kind, digest })
                }
                _ => None,
            };
            // Only a regular file can be adopted. Repair is asked for: a name the cache never
            // writes, or anything that is not a regular file, goes (the entry itself, never what
            // a link points to).
            let regular = self.storage.size(&issue.what)?.is_some();
            let adoption = match &key {
                Some(key) if regular => self.adopt(key, true)?,
                // A directory (say) cannot be removed as an object: it is left and reported.
                _ => match self.storage.remove(&issue.what) {
                    Ok(()) => super::recovery::Adoption::Removed,
                    Err(e) => super::recovery::Adoption::LeftAlone(e.to_string()),
                },
            };
            match adoption {
                super::recovery::Adoption::Adopted => report.adopted += 1,
                super::recovery::Adoption::Removed => report.removed_unindexed += 1,
                super::recovery::Adoption::LeftAlone(_) => report.left_alone += 1,
            }
        }
        // Damage in the index files is repaired by rewriting them: a fresh snapshot (below).
        let index_damage = !std::mem::take(&mut self.index_damage).is_empty();
        if report.adopted > 0 || index_damage {
            // Adopted content counts against the cap like anything put: evict down to the low
            // watermark if it took usage over the cap (repair writes; opening never evicts).
            let evicted = if self.index.bytes() > self.config.max_bytes {
                self.evict_until(self.config.low_bytes())?
            } else {
                Vec::new()
            };
            // Adopted entries (and evictions) are captured by a snapshot rather than records;
            // if it fails, the evictions' records are still owed (see `journal_pending`).
            if let Err(e) = self.compact() {
                self.pending.extend(evicted);
                return Err(e);
            }
        } else if !records.is_empty() {
            // The repair is done when its records are durable.
            self.journal_removals(records)?;
        }
        report.before = before;
        Ok(report)
    }
}
