//! Opening: replay snapshot + journal, drop a torn tail, reconcile with the stored files.

use super::{Cache, IntegrityIssue};
use crate::config::{Config, Durability};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::hashing::Hasher;
use crate::index::{Index, NewEntry};
use crate::journal::{self, FrameEnd, Journal, Record};
use crate::key::{Key, Kind};
use crate::layout;
use crate::log::Level;
use crate::manifest;
use crate::storage::{self, StorageError};
use crate::tags::TagStore;
use serde::{Deserialize, Serialize};

/// What opening found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Generation of the snapshot loaded, if one was.
    pub snapshot_generation: Option<u64>,
    /// The snapshot was damaged and ignored; the index was rebuilt from the journal and files.
    pub snapshot_damaged: bool,
    /// Journal records replayed.
    pub journal_records: u64,
    /// The journal ended in a torn record (a crash during an append), which was dropped.
    pub torn_tail: bool,
    /// Damaged regions of the journal that valid records follow: corruption, not a crash (a
    /// crash only tears the end). Their records are lost; the records after them were kept.
    /// Also counts damage at the end that was too large to check for records after it.
    pub journal_damaged_regions: u64,
    /// Bytes of those damaged regions, skipped.
    pub journal_damaged_bytes: u64,
    /// Journals of other generations removed (left by an interrupted compaction).
    pub stale_journals_removed: u64,
    /// Temp objects of earlier runs removed.
    pub temps_removed: u64,
    /// Files not in the index whose bytes matched their name, adopted.
    pub orphans_adopted: u64,
    /// Files not in the index, named by a digest their bytes do not match, removed.
    pub orphans_removed: u64,
    /// Index rows whose file was missing, dropped.
    pub missing_dropped: u64,
    /// Entries evicted while opening: always 0, since opening never evicts (a cap smaller than
    /// what is stored takes effect at the next write or cleanup). Kept for the report's shape.
    pub evicted: u64,
    /// Whether a fresh snapshot was written.
    pub compacted: bool,
    /// The last run closed cleanly (its journal ends in a matching `Closed` record), so the
    /// stored files were not walked; after anything else they are, and orphans are handled.
    pub clean_shutdown: bool,
    /// Index rows whose size was not their file's: re-hashed, then adopted with the true size
    /// or removed. Such a size never counts against the cap.
    pub size_mismatches: u64,
    /// Files in the cache's directories that it did not write (names it never writes,
    /// directories or unreadable files where an entry belongs): reported and left in place.
    pub foreign_files: u64,
}

/// What [`Cache::adopt`] did with a stored file.
pub(super) enum Adoption {
    /// Its bytes match its name: indexed.
    Adopted,
    /// Its bytes do not match its name: removed.
    Removed,
    /// It could not be read or removed (not a regular file, say): left in place, for this reason.
    LeftAlone(String),
}

/// Applies one persisted record to the in-memory state.
pub(crate) fn apply_record(
    index: &mut Index,
    tags: &mut TagStore,
    config: &Config,
    record: Record,
) {
    match record {
        Record::Put { entry, references } => {
            index.insert(entry, references);
        }
        Record::Touch {
            key,
            accessed,
            expires,
            access_count,
        } => {
            if let Some(id) = index.find(&key) {
                index.restore_access(id, accessed, expires, access_count);
            }
        }
        Record::Remove { key } => {
            if let Some(id) = index.find(&key) {
                index.remove(id);
            }
        }
        Record::Pins { key, pins } => {
            if let Some(id) = index.find(&key) {
                index.set_pins(id, pins);
            }
        }
        Record::Quarantine { key } => {
            if let Some(id) = index.find(&key) {
                index.quarantine(id);
            }
        }
        Record::TagSet {
            reference,
            digest,
            at,
            fresh_until,
        } => {
            tags.set(
                &reference,
                &digest,
                at,
                fresh_until,
                config.max_tag_history as usize,
            );
        }
        Record::TagInvalidate { reference } => {
            tags.invalidate(&reference);
        }
        Record::TagRemove { reference } => {
            tags.remove(&reference);
        }
        Record::Tag {
            reference,
            mut state,
        } => {
            // The history bound in force now applies, as it does to replayed `TagSet` records.
            let max = config.max_tag_history as usize;
            while state.history.len() > max {
                state.history.pop_front();
            }
            tags.insert_state(reference, state)
        }
        Record::Header { .. } | Record::End { .. } | Record::Closed { .. } => {}
    }
}

/// What loading the snapshot and the journal found.
struct Loaded {
    /// Damage was found that a fresh snapshot should replace.
    need_compact: bool,
    /// The journal ended in a `Closed` record with these counts.
    closed_with: Option<(u64, u64)>,
    /// A valid snapshot was loaded: journals of other generations hold nothing live.
    snapshot_valid: bool,
    /// A snapshot (valid or not) or a journal exists: this storage holds a cache.
    index_found: bool,
    /// Journals of other generations (left by an interrupted or failed compaction, or, without
    /// a snapshot, replayed and to be removed once a snapshot holds their records).
    stale_journals: Vec<u64>,
}

impl Cache {
    pub(super) fn recover(&mut self, adopt_existing: bool) -> Result<()> {
        let mut report = RecoveryReport::default();
        let loaded = self.load_persisted(&mut report)?;
        if !loaded.index_found && !adopt_existing {
            // Refused before anything is written or removed (temps included).
            if let Some(path) = self.first_stored_file()? {
                return Err(Error::InvalidConfig(format!(
                    "the storage holds {path} but no cache index: it is not an ocicache \
                     directory; to create a cache over its files, open it with adopt_existing"
                )));
            }
        }
        report.temps_removed = self.storage.clear_temps()?;
        let mut need_compact = loaded.need_compact;
        let closed_with = loaded.closed_with;

        // 3. Reconcile with the files actually stored.
        // After a clean shutdown whose counts match, the index is trusted as it stands: no
        // commit can be in flight, so no orphan can exist. Anything else (a crash, a torn tail,
        // a drop without close) walks every stored file.
        report.clean_shutdown = closed_with == Some((self.index.len() as u64, self.index.bytes()));
        if !report.clean_shutdown {
            // Over files the cache did not write (created with `adopt_existing`), nothing is
            // removed: a file whose bytes do not match its name is someone else's.
            self.reconcile(&mut report, loaded.index_found)?;
        }
        if report.orphans_adopted + report.orphans_removed + report.missing_dropped > 0 {
            need_compact = true;
        }

        // 4. Opening never evicts: a cap smaller than what is stored takes effect at the next
        //    write or cleanup, so that a command that only reads never deletes.

        if need_compact {
            self.compact()?;
            report.compacted = true;
        } else {
            self.ensure_journal()?;
        }
        // Only now that a snapshot holds everything they recorded (or a valid one was loaded,
        // and they hold nothing live) may the journals of other generations go.
        if loaded.snapshot_valid || report.compacted {
            for g in loaded.stale_journals {
                if g != self.journal.generation() {
                    self.storage.remove(&layout::journal_path(g))?;
                    report.stale_journals_removed += 1;
                }
            }
        }
        self.metrics
            .usage(self.index.bytes(), self.index.len() as u64);
        self.log.log(
            Level::Info,
            "cache opened",
            &[
                ("entries", &self.index.len().to_string()),
                ("bytes", &self.index.bytes().to_string()),
            ],
        );
        self.recovery = report;
        Ok(())
    }

    /// Loads the snapshot (in bulk) and replays the journal of its generation into an empty
    /// index and tag store. Writes nothing.
    fn load_persisted(&mut self, report: &mut RecoveryReport) -> Result<Loaded> {
        let mut need_compact = false;

        // 1. The snapshot, loaded in bulk: the ordered sets are built once, in one sorted pass.
        self.index.begin_bulk();
        // Every entry takes at least one `Put` frame of MIN_PUT_FRAME bytes, so the snapshot's
        // size bounds the entry count; reserving for it spares the index repeated rehashing.
        // But that size is a stored claim (a damaged file may report 200 GiB), so the
        // reservation only ever runs a bounded factor ahead of the entries actually read.
        let claimed = self
            .storage
            .size(layout::SNAPSHOT)?
            .map_or(0, |size| size / journal::MIN_PUT_FRAME);
        let claimed = usize::try_from(claimed).unwrap_or(usize::MAX);
        let mut reserved = 0usize;
        let (index, tags, config) = (&mut self.index, &mut self.tags, &self.config);
        let snapshot = journal::read_snapshot(self.storage.as_mut(), |r| {
            if index.len() >= reserved && reserved < claimed {
                reserved = claimed.min(index.len().saturating_mul(8).max(4096));
                index.reserve(reserved - index.len());
            }
            apply_record(index, tags, config, r)
        });
        let snapshot_generation = match snapshot {
            Ok(found) => found.map(|c| c.generation),
            Err(journal::SnapshotDamage::Storage(e)) => {
                self.index.finish_bulk();
                return Err(e.into());
            }
            Err(journal::SnapshotDamage::Invalid(reason)) => {
                // A snapshot is replaced atomically: a crash never damages it.
                self.log.log(
                    Level::Error,
                    "snapshot damaged; rebuilding the index",
                    &[("reason", &reason)],
                );
                // Still in bulk mode: the policy (perhaps a custom one) has seen nothing yet.
                self.index.discard_bulk();
                self.tags = TagStore::default();
                report.snapshot_damaged = true;
                need_compact = true;
                None
            }
        };
        self.index.finish_bulk();
        report.snapshot_generation = snapshot_generation;

        // 2. The journal of the snapshot's generation. Without a valid snapshot, every journal
        //    in generation order: a compaction creates the next generation's journal before it
        //    commits its snapshot, so the records of the older ones may be live.
        let mut journals: Vec<u64> = Vec::new();
        for name in self.storage.list(layout::INDEX_DIR)? {
            let Some(g) = layout::parse_journal_name(&name) else {
                continue;
            };
            // Hosts list entries that are not objects (a symlink, a directory): such a name is
            // not a journal the cache wrote. It is left alone and reported.
            let path = layout::journal_path(g);
            if self.storage.size(&path)?.is_none() {
                report.foreign_files += 1;
                self.log.log(
                    Level::Warn,
                    "file the cache did not write left in place",
                    &[("path", &path), ("reason", "not a regular file")],
                );
                continue;
            }
            journals.push(g);
        }
        journals.sort_unstable();
        let replay: Vec<u64> = match snapshot_generation {
            Some(g) => journals.iter().copied().filter(|j| *j == g).collect(),
            None => journals.clone(),
        };
        let generation = snapshot_generation
            .or(journals.last().copied())
            .unwrap_or(0);
        // The older journals are live until a snapshot holds what they recorded.
        self.older_journals_live = replay.len() > 1;
        if self.older_journals_live {
            need_compact = true;
        }
        let mut records = 0u64;
        let mut len = 0u64;
        // Set when the live journal ends in a `Closed` record: the last run shut down cleanly.
        let mut closed_with: Option<(u64, u64)> = None;
        for &g in &replay {
            let (index, tags, config) = (&mut self.index, &mut self.tags, &self.config);
            let mut header_ok = None;
            let mut read = 0u64;
            let closed = &mut closed_with;
            let replay =
                journal::read_journal(self.storage.as_mut(), &layout::journal_path(g), 0, |r| {
                    read += 1;
                    match (&r, header_ok) {
                        (Record::Header { generation: h, .. }, None) => header_ok = Some(*h == g),
                        (_, None) => {
                            // The header was lost to damage (reported below): the file's name
                            // still says which generation its records belong to.
                            header_ok = Some(true);
                            apply_record(index, tags, config, r);
                        }
                        (Record::Closed { entries, bytes }, Some(true)) => {
                            *closed = Some((*entries, *bytes));
                        }
                        (_, Some(true)) => {
                            *closed = None;
                            apply_record(index, tags, config, r);
                        }
                        _ => header_ok = Some(false),
                    }
                })?;
            report.journal_records += read;
            if g == generation {
                records = read;
                len = replay.valid_len;
            } else {
                closed_with = None;
            }
            if !replay.damaged.is_empty() {
                // What the damaged records did is missing from the index: the files are
                // reconciled (no clean-shutdown shortcut). The journal is kept as it is (a
                // fresh snapshot would erase the evidence); `verify` reports it until `repair`.
                closed_with = None;
                let path = layout::journal_path(g);
                let ranges: Vec<String> = replay
                    .damaged
                    .iter()
                    .map(|r| format!("{}..{}", r.start, r.end))
                    .collect();
                let bytes: u64 = replay.damaged.iter().map(|r| r.end - r.start).sum();
                report.journal_damaged_regions += replay.damaged.len() as u64;
                report.journal_damaged_bytes += bytes;
                self.log.log(
                    Level::Error,
                    "journal damaged: the records in the damaged bytes are lost, the valid ones after them kept",
                    &[("path", &path), ("bytes", &ranges.join(","))],
                );
                self.note_index_damage(
                    &path,
                    format!(
                        "damaged bytes {} skipped: their records are lost",
                        ranges.join(", ")
                    ),
                );
            }
            if replay.end == FrameEnd::Torn || header_ok != Some(true) {
                closed_with = None;
                need_compact = true;
                if !replay.gave_up {
                    report.torn_tail = true;
                    self.log.log(
                        Level::Warn,
                        "journal tail torn; dropped",
                        &[("generation", &g.to_string())],
                    );
                }
            }
        }
        self.journal = Journal::new(generation, records, len);
        self.journal.set_ends_closed(closed_with.is_some());
        if report.torn_tail {
            // Whatever follows the last valid record must go before anything is appended.
            self.journal.absorb(0, len, true);
        }
        Ok(Loaded {
            need_compact,
            closed_with,
            snapshot_valid: snapshot_generation.is_some(),
            index_found: report.snapshot_damaged
                || snapshot_generation.is_some()
                || !journals.is_empty(),
            stale_journals: journals.into_iter().filter(|g| *g != generation).collect(),
        })
    }

    /// Catches up with what other processes sharing this storage committed since this one last
    /// looked: replays the records they appended to the journal, or reloads the whole index if
    /// one of them compacted it into a new generation. Returns whether anything changed.
    ///
    /// Hosts that let several processes open one directory call this under their lock before
    /// every operation (the native host does, under an OS file lock). It costs two `size`
    /// calls when nothing changed. Readers opened before a reload lose their protection from
    /// eviction (they still never serve wrong bytes).
    ///
    /// ```
    /// use ocicache_core::{Cache, ManualClock, storage::MemoryStorage};
    /// let storage = MemoryStorage::new();
    /// let mut a = Cache::builder(storage.clone(), ManualClock::new(0)).open()?;
    /// let mut b = Cache::builder(storage, ManualClock::new(0)).open()?;
    /// let digest = a.put_blob(None, b"from a")?;
    /// assert!(!b.has_blob(&digest));
    /// assert!(b.refresh()?);
    /// assert_eq!(b.get_blob(&digest)?, b"from a");
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn refresh(&mut self) -> Result<bool> {
        let changed = self.catch_up()?;
        if self.pending.is_empty() {
            return Ok(changed);
        }
        // Caught up: the records of earlier removals whose append failed can go in now. Still
        // failing (no space), they wait; reads and lists go on meanwhile.
        if let Err(e) = self.journal_pending() {
            self.warn(
                "could not journal earlier removals",
                &[("error", &e.to_string())],
            );
        }
        Ok(true)
    }

    /// Reads what other processes appended since this one last looked; see [`Cache::refresh`].
    fn catch_up(&mut self) -> Result<bool> {
        let generation = self.journal.generation();
        let path = layout::journal_path(generation);
        let size = self.storage.size(&path)?;
        let compacted = self
            .storage
            .size(&layout::journal_path(generation + 1))?
            .is_some();
        let known = self.journal.len();
        match size {
            Some(len) if !compacted && len == known => return Ok(false),
            Some(len) if !compacted && len > known => {
                // New frames from the known offset on: records another process appended,
                // perhaps after cutting a torn tail this process saw earlier; or still that
                // torn tail.
                let (index, tags, config) = (&mut self.index, &mut self.tags, &self.config);
                let mut records = 0u64;
                let mut last_closed = None;
                let (end, valid_len) =
                    journal::read_records_from(self.storage.as_mut(), &path, known, |r| {
                        records += 1;
                        last_closed = Some(matches!(r, Record::Closed { .. }));
                        apply_record(index, tags, config, r);
                    })?;
                self.journal
                    .absorb(records, valid_len, end == FrameEnd::Torn);
                if let Some(closed) = last_closed {
                    self.journal.set_ends_closed(closed);
                }
                if records == 0 {
                    return Ok(false);
                }
                self.after_refresh();
                return Ok(true);
            }
            None if !compacted && known == 0 => return Ok(false),
            _ => {}
        }
        // Another process compacted (or cut the journal, or a compaction failed and left the
        // next generation's journal behind): load the snapshot and the live journal.
        self.index.clear();
        self.tags = TagStore::default();
        let mut report = RecoveryReport::default();
        let loaded = self.load_persisted(&mut report)?;
        self.ensure_journal()?;
        if loaded.snapshot_valid {
            // Under the host's lock no compaction is under way: journals of other generations
            // are leftovers holding nothing live.
            for g in loaded.stale_journals {
                self.storage.remove(&layout::journal_path(g))?;
            }
        }
        self.after_refresh();
        Ok(true)
    }

    /// Remembers damage found in an index file, for the integrity check.
    fn note_index_damage(&mut self, path: &str, detail: String) {
        let issue = IntegrityIssue {
            what: path.to_owned(),
            detail,
        };
        if !self.index_damage.contains(&issue) {
            self.index_damage.push(issue);
        }
    }

    fn after_refresh(&mut self) {
        self.metrics
            .usage(self.index.bytes(), self.index.len() as u64);
    }

    /// Creates the current generation's journal (its header) if it does not exist yet, so that
    /// other processes sharing the storage can tell, from its absence, that it was compacted.
    pub(super) fn ensure_journal(&mut self) -> Result<()> {
        if !self.journal.is_started() {
            self.journal.append(self.storage.as_mut(), &[])?;
        }
        Ok(())
    }

    /// Matches index rows with stored files: adopts valid orphans, removes invalid ones, and
    /// drops rows whose file is missing. Only what the cache could have written is removed:
    /// files named by a digest whose bytes do not match. Anything else in its directories (a
    /// name the core never writes, a directory or an unreadable file where a blob belongs) is
    /// reported and left alone, and does not stop the open.
    fn reconcile(&mut self, report: &mut RecoveryReport, remove_invalid: bool) -> Result<()> {
        /// Names parsed before their lookups (see below).
        const BATCH: usize = 4096;
        let mut seen = vec![false; self.index.id_bound()];
        let mark_seen = |cache: &Cache, seen: &mut Vec<bool>, key: &Key| {
            if let Some(id) = cache.index.find(key) {
                if seen.len() <= id.0 as usize {
                    seen.resize(id.0 as usize + 1, false);
                }
                seen[id.0 as usize] = true;
            }
        };
        for kind in Kind::ALL {
            for algorithm in Algorithm::ALL {
                let dir = layout::algorithm_dir(kind, algorithm);
                // A file indexed with its stored size only needs marking; the rest is handled
                // after, in name order (hosts may list in any order; sorted, reports and adoption
                // order agree everywhere), so that the million files of a healthy directory need
                // no sort and no string of their own. Names are parsed a batch at a time, then
                // looked up in a loop of their own: without the hex decoding in between, the CPU
                // overlaps the lookups' cache misses (about 2.5x faster at 1M entries).
                let mut rest: Vec<(String, Option<u64>, Option<Digest>)> = Vec::new();
                let mut batch: Vec<(Digest, Option<u64>)> = Vec::with_capacity(BATCH);
                let index = &self.index;
                let mut mark =
                    |batch: &mut Vec<(Digest, Option<u64>)>,
                     rest: &mut Vec<(String, Option<u64>, Option<Digest>)>| {
                        for (digest, stored) in batch.drain(..) {
                            let key = Key { kind, digest };
                            if let Some(id) = index.find(&key) {
                                let e = index.get(id);
                                if !e.is_quarantined() && stored == Some(e.size()) {
                                    seen[id.0 as usize] = true;
                                    continue;
                                }
                            }
                            rest.push((key.digest.hex(), stored, Some(key.digest)));
                        }
                    };
                self.storage.visit_sizes(&dir, &mut |name, stored| {
                    match layout::parse_entry_name(algorithm, name) {
                        Some(digest) => batch.push((digest, stored)),
                        None => rest.push((name.to_owned(), stored, None)),
                    }
                    if batch.len() == BATCH {
                        mark(&mut batch, &mut rest);
                    }
                })?;
                mark(&mut batch, &mut rest);
                rest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                for (name, stored, digest) in rest {
                    let Some(digest) = digest else {
                        self.left_alone(
                            report,
                            &format!("{dir}/{name}"),
                            "not a name the cache writes",
                        );
                        continue;
                    };
                    let key = Key { kind, digest };
                    let indexed = self
                        .index
                        .find(&key)
                        .filter(|id| !self.index.get(*id).is_quarantined());
                    if let Some(id) = indexed {
                        // A size the index claims counts against the cap and drives eviction:
                        // it must be the stored file's.
                        let claimed = self.index.get(id).size();
                        report.size_mismatches += 1;
                        self.log.log(
                            Level::Error,
                            "indexed size differs from the stored file; re-hashing it",
                            &[
                                ("entry", &key.to_string()),
                                ("indexed", &claimed.to_string()),
                                ("stored", &stored.map_or("none".into(), |s| s.to_string())),
                            ],
                        );
                    }
                    match self.adopt(&key, remove_invalid)? {
                        Adoption::Adopted => {
                            if indexed.is_none() {
                                report.orphans_adopted += 1;
                            }
                            mark_seen(self, &mut seen, &key);
                        }
                        Adoption::Removed => {
                            if indexed.is_none() {
                                report.orphans_removed += 1;
                            }
                        }
                        Adoption::LeftAlone(why) => {
                            self.left_alone(report, &layout::entry_path(&key), &why);
                        }
                    }
                }
            }
        }
        let missing: Vec<_> = self
            .index
            .iter()
            .filter(|(id, e)| {
                !e.is_quarantined() && !seen.get(id.0 as usize).copied().unwrap_or(false)
            })
            .map(|(id, _)| id)
            .collect();
        for id in missing {
            self.log.log(
                Level::Warn,
                "indexed file missing; dropped",
                &[("entry", &self.index.get(id).key().to_string())],
            );
            self.index.remove(id);
            report.missing_dropped += 1;
        }
        Ok(())
    }

    /// The first file in the cache's content directories, if any.
    fn first_stored_file(&mut self) -> Result<Option<String>> {
        for kind in Kind::ALL {
            for algorithm in Algorithm::ALL {
                let dir = layout::algorithm_dir(kind, algorithm);
                if let Some(name) = self.storage.list(&dir)?.into_iter().min() {
                    return Ok(Some(format!("{dir}/{name}")));
                }
            }
        }
        Ok(None)
    }

    fn left_alone(&self, report: &mut RecoveryReport, path: &str, why: &str) {
        report.foreign_files += 1;
        self.log.log(
            Level::Warn,
            "file the cache did not write left in place",
            &[("path", path), ("reason", why)],
        );
    }

    /// Re-hashes a stored file that the index does not list (or lists with a size that is not
    /// the file's); indexes it if its bytes match its name (and, for manifests, parse), removes
    /// it otherwise. A file that cannot be read (a directory where a blob belongs, a special
    /// file) is left alone. The caller persists the change.
    pub(super) fn adopt(&mut self, key: &Key, remove_invalid: bool) -> Result<Adoption> {
        let path = layout::entry_path(key);
        let valid = match key.kind {
            Kind::Blob => match self.hash_stored(&path, key.digest.algorithm())? {
                Ok((digest, size)) => (digest == key.digest).then_some((size, None, Vec::new())),
                Err(e) => return Ok(Adoption::LeftAlone(e.to_string())),
            },
            Kind::Manifest => {
                // Never more than the limit is read, whatever size the file reports.
                let size = match self.storage.size(&path) {
                    Ok(size) => size.unwrap_or(0),
                    Err(e) => return Ok(Adoption::LeftAlone(e.to_string())),
                };
                let bytes = if size > self.config.max_manifest_bytes {
                    None
                } else {
                    match storage::read_exact(self.storage.as_mut(), &path, size) {
                        Ok(bytes) => bytes,
                        Err(e) => return Ok(Adoption::LeftAlone(e.to_string())),
                    }
                };
                if let Some(bytes) = bytes {
                    let digest = crate::hashing::digest_of(
                        self.hasher.as_ref(),
                        key.digest.algorithm(),
                        &bytes,
                    )?;
                    match manifest::validate(&bytes, None) {
                        Ok(v) if digest == key.digest => {
                            Some((bytes.len() as u64, Some(v.media_type), v.references))
                        }
                        _ => None,
                    }
                } else {
                    None
                }
            }
        };
        let Some((size, media_type, references)) = valid else {
            if !remove_invalid {
                return Ok(Adoption::LeftAlone(
                    "its bytes do not match its name, and the cache did not write it".into(),
                ));
            }
            // Named by a digest its bytes do not match: what a crash or bit rot left of the
            // cache's own file, never served.
            if let Err(e) = self.storage.remove(&path) {
                return Ok(Adoption::LeftAlone(e.to_string()));
            }
            self.log.log(
                Level::Warn,
                "invalid unindexed file removed",
                &[("path", &path)],
            );
            return Ok(Adoption::Removed);
        };
        let mut entry: NewEntry = self.new_entry(key.clone(), size);
        entry.media_type = media_type;
        if let Some(id) = self.index.find(key) {
            entry.pins = self.index.get(id).pins();
        }
        self.index.insert(entry, references);
        self.log.log(
            Level::Info,
            "unindexed file adopted",
            &[("entry", &key.to_string())],
        );
        Ok(Adoption::Adopted)
    }

    /// Streams a stored file through the hasher. The outer error is the hasher's (the host
    /// failed: stop); the inner one is reading the file's (the file is unusable).
    pub(super) fn hash_stored(
        &mut self,
        path: &str,
        algorithm: Algorithm,
    ) -> Result<std::result::Result<(Digest, u64), StorageError>> {
        let mut hasher = Hasher::new(self.hasher.as_ref(), algorithm);
        let mut buf = vec![0u8; 1 << 20];
        let mut offset = 0u64;
        loop {
            let n = match self.storage.read_at(path, offset, &mut buf) {
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        self.metrics.retrieved(offset);
        Ok(Ok((hasher.finish()?, offset)))
    }

    /// Writes a snapshot of the whole state and starts a new journal generation.
    ///
    /// The new generation's journal is created *before* the snapshot is committed: once the
    /// snapshot names generation `g + 1`, its journal exists, so that no process sharing the
    /// storage keeps appending to `journal-<g>` (which the next open would remove as stale).
    /// If the compaction fails or dies before the commit, `journal-<g>` stays the live one and
    /// the new journal (a header only) is a leftover that readers remove.
    ///
    /// A compaction is durable at every level: its snapshot replaces journals that a relaxed
    /// cache never synced, so a power loss after it cannot take older entries and tags with it.
    pub(super) fn compact(&mut self) -> Result<()> {
        if self.durability == Durability::Strict {
            return self.write_compaction();
        }
        self.storage.set_durability(Durability::Strict);
        let result = self.write_compaction();
        self.storage.set_durability(self.durability);
        result
    }

    fn write_compaction(&mut self) -> Result<()> {
        let generation = self.journal.generation() + 1;
        // A journal older than the current one (its removal failed at an earlier compaction)
        // must go first: a process still following it tells a compaction from nothing by
        // `journal-<g>` being gone or `journal-<g+1>` existing, and after a second compaction
        // only the first would still say so.
        // (Without a snapshot, older journals may still hold live records: they go only once
        // this compaction's snapshot holds them, below.)
        if !self.older_journals_live {
            self.remove_journals_before(self.journal.generation())?;
        }
        let next_path = layout::journal_path(generation);
        // Only a compaction that failed or died before its commit leaves this file: nobody
        // follows it.
        self.storage.remove(&next_path)?;
        let mut next = Journal::new(generation, 0, 0);
        if let Err(e) = next.append(self.storage.as_mut(), &[]) {
            let _ = self.storage.remove(&next_path);
            return Err(e.into());
        }
        let index = &self.index;
        let entries = index.ids_by_use().into_iter().map(|id| {
            let e = index.get(id);
            Record::Put {
                entry: NewEntry {
                    key: e.key(),
                    size: e.size(),
                    created: e.created_at(),
                    accessed: e.accessed_at(),
                    expires: e.expires_at(),
                    access_count: e.access_count(),
                    pins: e.pins(),
                    media_type: e.media_type(),
                    quarantined: e.is_quarantined(),
                },
                references: index.references(id).to_vec(),
            }
        });
        let tags = &self.tags;
        let tag_records = tags.sorted_references().into_iter().map(|r| Record::Tag {
            reference: r.clone(),
            state: tags.get(r).expect("listed").clone(),
        });
        if let Err(e) = journal::write_snapshot(
            self.storage.as_mut(),
            generation,
            entries.chain(tag_records),
        ) {
            // A failure after the rename (syncing the directory) may still have put the new
            // snapshot in place: then its journal must stay.
            let committed = matches!(
                journal::read_snapshot(self.storage.as_mut(), |_| {}),
                Ok(Some(c)) if c.generation == generation
            );
            if !committed {
                let _ = self.storage.remove(&next_path);
                return Err(e.into());
            }
        }
        // Buffered access records are captured by the snapshot.
        self.journal = next;
        self.older_journals_live = false;
        if let Err(e) = self.remove_journals_before(generation) {
            // The snapshot names the new generation: openers and the next compaction remove
            // what is left.
            self.warn(
                "could not remove the old journal",
                &[("error", &e.to_string())],
            );
        }
        self.last_compaction = Some(self.now());
        Ok(())
    }

    /// Removes the journals of generations before `generation`.
    fn remove_journals_before(&mut self, generation: u64) -> Result<()> {
        for name in self.storage.list(layout::INDEX_DIR)? {
            if let Some(old) = layout::parse_journal_name(&name)
                && old < generation
            {
                self.storage.remove(&layout::journal_path(old))?;
            }
        }
        Ok(())
    }

    /// Compacts when the journal has grown past the live state (amortized O(1) per record).
    ///
    /// Called after an operation's record is durable: a failed compaction does not fail the
    /// operation, and leaves the current generation's journal the live one (see `compact`).
    pub(super) fn maybe_compact(&mut self) {
        let live = (self.index.len() + self.tags.len()) as u64;
        if self.journal.records() > self.config.compaction_min_records.max(live)
            && let Err(e) = self.compact()
        {
            self.warn(
                "compaction failed; the current journal stays the live one",
                &[("error", &e.to_string())],
            );
        }
    }
}
