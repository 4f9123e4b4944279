//! Cross-host conformance scenarios, played against the native core.
//!
//! Every `*.json` file under `tests/scenarios/` (at the workspace root) is one scenario; the
//! format is documented in `tests/scenarios/README.md`. The player is shared by every Rust host
//! (crate `ocicache-conformance`, `tests/conformance-runner`); here each scenario runs over a
//! fresh [`MemoryStorage`] and [`ManualClock`].

use ocicache_conformance::{Subject, check_literal_digests, play, run_all};
use ocicache_core::storage::{MemoryStorage, Storage};
use ocicache_core::{
    BlobReader, BlobWriter, Cache, CleanupReport, Config, DebugInfo, Digest, EntryInfo,
    IntegrityReport, Key, Manifest, ManualClock, MediaType, MetricsSnapshot, RecoveryReport,
    Reference, RepairReport, Resolution, Result, Stats, TagHistoryEntry, TagMapping, TagUpdate,
};
use serde_json::{Value, json};

/// The core over memory storage and a manual clock.
struct CoreSubject {
    storage: MemoryStorage,
    clock: ManualClock,
    cache: Option<Cache>,
    /// Runner self-test: closing fails (as a close whose records cannot be written would).
    close_fails: bool,
}

impl CoreSubject {
    fn new(start_ms: u64) -> CoreSubject {
        CoreSubject {
            storage: MemoryStorage::new(),
            clock: ManualClock::new(start_ms),
            cache: None,
            close_fails: false,
        }
    }

    /// The open cache (the runner calls cache operations only while one is open).
    fn c(&mut self) -> &mut Cache {
        self.cache
            .as_mut()
            .expect("the runner checks that a cache is open")
    }
}

impl Subject for CoreSubject {
    type Writer = BlobWriter;
    type Reader = BlobReader;
    type PullWriter = BlobWriter;
    type PullStore<'a> = &'a mut Cache;

    fn pull_store(&mut self) -> &mut Cache {
        self.c()
    }

    fn open(&mut self, config: Config) -> Result<RecoveryReport> {
        let cache = Cache::builder(self.storage.clone(), self.clock.clone())
            .config(config)
            .open()?;
        let report = cache.recovery_report().clone();
        self.cache = Some(cache);
        Ok(report)
    }
    fn close(
        &mut self,
        flush: bool,
        writers: Vec<BlobWriter>,
        readers: Vec<BlobReader>,
    ) -> Result<()> {
        drop(writers);
        if let Some(mut cache) = self.cache.take() {
            for r in readers {
                cache.close_blob(r);
            }
            if flush {
                cache.close()?;
                if self.close_fails {
                    return Err(ocicache_core::Error::Storage(
                        ocicache_core::StorageError::Io("injected close failure".into()),
                    ));
                }
            }
        }
        Ok(())
    }
    fn is_open(&self) -> bool {
        self.cache.is_some()
    }
    fn advance_clock(&mut self, ms: u64) {
        self.clock.advance(ms);
    }
    fn set_clock(&mut self, ms: u64) {
        self.clock.set(ms);
    }
    fn flush(&mut self) -> Result<()> {
        self.c().flush()
    }
    fn recovery_report(&mut self) -> Result<RecoveryReport> {
        Ok(self.c().recovery_report().clone())
    }

    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        self.c().put_manifest(digest, bytes, media_type)
    }
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        self.c().get_manifest(digest)
    }
    fn has_manifest(&mut self, digest: &Digest) -> Result<bool> {
        Ok(self.c().has_manifest(digest))
    }
    fn delete_manifest(&mut self, digest: &Digest) -> Result<bool> {
        self.c().delete_manifest(digest)
    }
    fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>> {
        self.c().manifest_references(digest)
    }

    fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<BlobWriter> {
        self.c().begin_blob(expected, size)
    }
    fn write_blob(&mut self, writer: &mut BlobWriter, chunk: &[u8]) -> Result<()> {
        self.c().write_blob(writer, chunk)
    }
    fn commit_blob(&mut self, writer: BlobWriter) -> Result<Digest> {
        self.c().commit_blob(writer)
    }
    fn abort_blob(&mut self, mut writer: BlobWriter) {
        self.c().abort_blob(&mut writer);
    }
    fn open_blob(&mut self, digest: &Digest) -> Result<(BlobReader, u64)> {
        let r = self.c().open_blob(digest)?;
        let size = r.size();
        Ok((r, size))
    }
    fn read_blob(&mut self, reader: &mut BlobReader, buf: &mut [u8]) -> Result<usize> {
        self.c().read_blob(reader, buf)
    }
    fn close_blob(&mut self, reader: BlobReader) {
        self.c().close_blob(reader);
    }
    fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>> {
        self.c().get_blob(digest)
    }
    fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        Ok(self.c().has_blob(digest))
    }
    fn delete_blob(&mut self, digest: &Digest) -> Result<bool> {
        self.c().delete_blob(digest)
    }

    fn pin(&mut self, key: &Key) -> Result<u32> {
        self.c().pin(key)
    }
    fn unpin(&mut self, key: &Key) -> Result<u32> {
        self.c().unpin(key)
    }
    fn delete(&mut self, key: &Key) -> Result<bool> {
        self.c().delete(key)
    }

    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        self.c().put_tag(reference, digest)
    }
    fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping> {
        self.c().get_tag(reference)
    }
    fn has_tag(&mut self, reference: &Reference) -> Result<bool> {
        Ok(self.c().has_tag(reference))
    }
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        self.c().resolve_tag(reference)
    }
    fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>> {
        Ok(self.c().resolve_tags(references))
    }
    fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest> {
        self.c().resolve_failed(reference)
    }
    fn detect_movement(&mut self, reference: &Reference, remote: &Digest) -> Result<bool> {
        self.c().detect_movement(reference, remote)
    }
    fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool> {
        self.c().invalidate_tag(reference)
    }
    fn delete_tag(&mut self, reference: &Reference) -> Result<bool> {
        self.c().delete_tag(reference)
    }
    fn tag_history(&mut self, reference: &Reference) -> Result<Vec<TagHistoryEntry>> {
        self.c().tag_history(reference)
    }
    fn tags(&mut self) -> Result<Vec<TagMapping>> {
        Ok(self.c().tags())
    }

    fn stats(&mut self) -> Result<Stats> {
        Ok(self.c().stats())
    }
    fn metrics(&mut self) -> Result<MetricsSnapshot> {
        Ok(self.c().metrics())
    }
    fn size(&mut self) -> Result<u64> {
        Ok(self.c().size())
    }
    fn contents(&mut self) -> Result<Vec<EntryInfo>> {
        Ok(self.c().contents())
    }
    fn debug_info(&mut self) -> Result<DebugInfo> {
        Ok(self.c().debug_info())
    }
    fn check_integrity(&mut self) -> Result<IntegrityReport> {
        self.c().check_integrity()
    }
    fn repair(&mut self) -> Result<RepairReport> {
        self.c().repair()
    }
    fn validate_digests(&mut self) -> Result<(u64, Vec<String>)> {
        self.c().validate_digests()
    }
    fn clear_expired(&mut self) -> Result<u64> {
        self.c().clear_expired()
    }
    fn cleanup(&mut self) -> Result<CleanupReport> {
        self.c().cleanup()
    }
    fn clear(&mut self) -> Result<()> {
        self.c().clear()
    }

    fn storage_corrupt(&mut self, path: &str, offset: u64) -> Result<bool, String> {
        Ok(self.storage.corrupt(path, offset as usize))
    }
    fn storage_truncate(&mut self, path: &str, len: u64) -> Result<(), String> {
        self.storage.truncate(path, len as usize);
        Ok(())
    }
    fn storage_remove(&mut self, path: &str) -> Result<(), String> {
        self.storage.clone().remove(path).map_err(|e| e.to_string())
    }
    fn storage_plant(&mut self, path: &str, data: &[u8]) -> Result<(), String> {
        self.storage.put(path, data);
        Ok(())
    }
    fn storage_read(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.storage.get(path))
    }
    fn storage_list(&mut self, dir: &str) -> Result<Vec<String>, String> {
        self.storage.clone().list(dir).map_err(|e| e.to_string())
    }
    fn storage_bytes(&mut self, dir: &str) -> Result<u64, String> {
        let prefix = format!("{dir}/");
        Ok(self
            .storage
            .paths()
            .iter()
            .filter(|p| p.starts_with(&prefix))
            .map(|p| self.storage.get(p).map_or(0, |b| b.len() as u64))
            .sum())
    }
    fn storage_temps(&mut self) -> Result<u64, String> {
        Ok(self.storage.temp_count() as u64)
    }
}

#[test]
fn conformance_scenarios() {
    run_all(CoreSubject::new);
}

/// Every put whose `data` is meant to match its `digest` really hashes to it.
#[test]
fn literal_digests_match_their_data() {
    check_literal_digests();
}

/// A scenario with a wrong expectation fails, naming the step; one with a right one passes.
#[test]
fn a_wrong_expectation_fails_the_scenario() {
    let scenario = |expect: Value| {
        json!({
            "name": "self/test",
            "description": "runner self-test",
            "config": {"default_ttl_ms": 1000},
            "steps": [
                {"op": "blob.put", "args": {"data": "x"}},
                {"op": "clock.advance", "args": {"ms": 1000}},
                {"op": "blob.get", "args": {"digest": "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}, "expect": expect},
            ]
        })
    };
    assert_eq!(
        play(
            "self/test",
            &scenario(json!({"error": "expired"})),
            CoreSubject::new
        ),
        Ok(3)
    );
    let err = play(
        "self/test",
        &scenario(json!({"error": "not_found"})),
        CoreSubject::new,
    )
    .unwrap_err();
    assert!(err.contains("step 2 (blob.get)"), "{err}");
    assert!(
        play(
            "self/test",
            &scenario(json!({"ok": {"size": 1}})),
            CoreSubject::new
        )
        .is_err()
    );
    assert!(
        play(
            "other/name",
            &scenario(json!({"error": "expired"})),
            CoreSubject::new
        )
        .is_err()
    );
    let unknown =
        json!({"name": "self/test", "description": "", "steps": [{"op": "blob.frobnicate"}]});
    assert!(
        play("self/test", &unknown, CoreSubject::new)
            .unwrap_err()
            .contains("unknown op")
    );
}

/// A scenario whose final close fails fails too: a close is an operation like any other.
#[test]
fn a_failing_final_close_fails_the_scenario() {
    let scenario = json!({
        "name": "self/close",
        "description": "runner self-test",
        "steps": [{"op": "blob.put", "args": {"data": "x"}}]
    });
    assert_eq!(play("self/close", &scenario, CoreSubject::new), Ok(1));
    let failing = |start| CoreSubject {
        close_fails: true,
        ..CoreSubject::new(start)
    };
    let err = play("self/close", &scenario, failing).unwrap_err();
    assert!(err.contains("closing") && err.contains("storage"), "{err}");
}
