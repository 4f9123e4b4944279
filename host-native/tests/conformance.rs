//! The cross-host conformance scenarios (`tests/scenarios`), played against `ocicache::Cache`
//! with each engine — the component run by wasmtime, and the core linked natively — over the
//! real filesystem (`FsStorage` in a fresh temp dir per
//! scenario) and an injected manual clock. `storage.*` steps act on the real files.

use ocicache::{
    BlobReader, BlobWriter, Cache, CleanupReport, Config, DebugInfo, Digest, EngineKind, EntryInfo,
    Error, IntegrityReport, Key, Manifest, ManualClock, MediaType, MetricsSnapshot, RecoveryReport,
    Reference, RepairReport, Resolution, Result, Stats, StorageError, TagHistoryEntry, TagMapping,
    TagUpdate, error_of,
};
use ocicache_conformance::{Subject, run_all};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

struct FsSubject {
    engine: EngineKind,
    dir: tempfile::TempDir,
    clock: ManualClock,
    cache: Option<Cache>,
}

impl FsSubject {
    fn new(engine: EngineKind, start_ms: u64) -> FsSubject {
        FsSubject {
            engine,
            dir: tempfile::tempdir().expect("temp dir"),
            clock: ManualClock::new(start_ms),
            cache: None,
        }
    }

    fn c(&self) -> &Cache {
        self.cache
            .as_ref()
            .expect("the runner checks that a cache is open")
    }

    /// The real path of a scenario path (relative, no `..`: scenarios are trusted data).
    fn path(&self, rel: &str) -> Result<PathBuf, String> {
        if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
            return Err(format!("refusing storage path {rel:?}"));
        }
        Ok(self.dir.path().join(rel))
    }
}

/// The cache error behind an `io::Error` from a blob reader or writer.
fn from_io(e: io::Error) -> Error {
    error_of(&e)
        .cloned()
        .unwrap_or_else(|| Error::Storage(StorageError::Io(e.to_string())))
}

fn io_msg(e: io::Error) -> String {
    e.to_string()
}

/// Whether `dir` holds a file, at any depth (the memory storage's notion of "exists").
fn holds_a_file(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let t = e.file_type();
            t.as_ref().is_ok_and(|t| t.is_file())
                || t.is_ok_and(|t| t.is_dir()) && holds_a_file(&e.path())
        })
    })
}

fn bytes_under(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                Ok(t) if t.is_dir() => bytes_under(&e.path()),
                _ => 0,
            })
            .sum()
    })
}

impl Subject for FsSubject {
    type Writer = BlobWriter;
    type Reader = BlobReader;
    type PullWriter = BlobWriter;
    type PullStore<'a> = &'a Cache;

    fn pull_store(&mut self) -> &Cache {
        self.cache
            .as_ref()
            .expect("the runner checks that a cache is open")
    }

    fn open(&mut self, config: Config) -> Result<RecoveryReport> {
        let cache = Cache::builder(self.dir.path())
            .config(config)
            .engine(self.engine)
            .clock(self.clock.clone())
            .open()?;
        let report = cache.recovery_report()?;
        self.cache = Some(cache);
        Ok(report)
    }
    fn close(
        &mut self,
        flush: bool,
        writers: Vec<BlobWriter>,
        readers: Vec<BlobReader>,
    ) -> Result<()> {
        drop(readers);
        let result = match self.cache.take() {
            Some(cache) if flush => cache.close(),
            Some(cache) => {
                cache.abandon();
                Ok(())
            }
            None => Ok(()),
        };
        // After the cache is gone: dropping them cannot abort, so their temps stay.
        drop(writers);
        result
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
        self.c().recovery_report()
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
        self.c().has_manifest(digest)
    }
    fn delete_manifest(&mut self, digest: &Digest) -> Result<bool> {
        self.c().delete_manifest(digest)
    }
    fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>> {
        self.c().manifest_references(digest)
    }

    fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<BlobWriter> {
        self.c().blob_writer(expected, size)
    }
    fn write_blob(&mut self, writer: &mut BlobWriter, chunk: &[u8]) -> Result<()> {
        writer.write_all(chunk).map_err(from_io)
    }
    fn commit_blob(&mut self, writer: BlobWriter) -> Result<Digest> {
        writer.commit()
    }
    fn abort_blob(&mut self, writer: BlobWriter) {
        writer.abort();
    }
    fn open_blob(&mut self, digest: &Digest) -> Result<(BlobReader, u64)> {
        let r = self.c().blob_reader(digest)?;
        let size = r.size();
        Ok((r, size))
    }
    fn read_blob(&mut self, reader: &mut BlobReader, buf: &mut [u8]) -> Result<usize> {
        reader.read(buf).map_err(from_io)
    }
    fn close_blob(&mut self, reader: BlobReader) {
        drop(reader);
    }
    fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>> {
        self.c().get_blob(digest)
    }
    fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        self.c().has_blob(digest)
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
        self.c().has_tag(reference)
    }
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        self.c().resolve_tag(reference)
    }
    fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>> {
        self.c().resolve_tags(references)
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
        self.c().tags()
    }

    fn stats(&mut self) -> Result<Stats> {
        self.c().stats()
    }
    fn metrics(&mut self) -> Result<MetricsSnapshot> {
        self.c().metrics()
    }
    fn size(&mut self) -> Result<u64> {
        self.c().size()
    }
    fn contents(&mut self) -> Result<Vec<EntryInfo>> {
        self.c().contents()
    }
    fn debug_info(&mut self) -> Result<DebugInfo> {
        self.c().debug_info()
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
        let p = self.path(path)?;
        let file = match fs::OpenOptions::new().read(true).write(true).open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_msg(e)),
        };
        let mut b = [0u8; 1];
        if file.read_at(&mut b, offset).map_err(io_msg)? == 0 {
            return Ok(false);
        }
        file.write_at(&[b[0] ^ 0xff], offset).map_err(io_msg)?;
        Ok(true)
    }
    fn storage_truncate(&mut self, path: &str, len: u64) -> Result<(), String> {
        let p = self.path(path)?;
        match fs::OpenOptions::new().write(true).open(&p) {
            Ok(f) => {
                let size = f.metadata().map_err(io_msg)?.len();
                f.set_len(len.min(size)).map_err(io_msg)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_msg(e)),
        }
    }
    fn storage_remove(&mut self, path: &str) -> Result<(), String> {
        match fs::remove_file(self.path(path)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_msg(e)),
            _ => Ok(()),
        }
    }
    fn storage_plant(&mut self, path: &str, data: &[u8]) -> Result<(), String> {
        let p = self.path(path)?;
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io_msg)?;
        }
        fs::write(&p, data).map_err(io_msg)
    }
    fn storage_read(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let p = self.path(path)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => fs::read(&p).map(Some).map_err(io_msg),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_msg(e)),
        }
    }
    fn storage_list(&mut self, dir: &str) -> Result<Vec<String>, String> {
        let p = self.path(dir)?;
        let Ok(rd) = fs::read_dir(&p) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter(|e| match e.file_type() {
                Ok(t) if t.is_file() => true,
                Ok(t) if t.is_dir() => holds_a_file(&e.path()),
                _ => false,
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
    fn storage_bytes(&mut self, dir: &str) -> Result<u64, String> {
        Ok(bytes_under(&self.path(dir)?))
    }
    fn storage_temps(&mut self) -> Result<u64, String> {
        Ok(fs::read_dir(self.dir.path().join("tmp")).map_or(0, |rd| rd.count() as u64))
    }
}

#[test]
fn conformance_scenarios_native_engine_over_the_filesystem() {
    let (passed, _) = run_all(|start| FsSubject::new(EngineKind::Native, start));
    assert!(passed >= 162, "expected every scenario, played {passed}");
}

#[test]
fn conformance_scenarios_component_engine_over_the_filesystem() {
    let (passed, _) = run_all(|start| FsSubject::new(EngineKind::Component, start));
    assert!(passed >= 162, "expected every scenario, played {passed}");
}
