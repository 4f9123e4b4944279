//! # ocicache-conformance
//!
//! The player of the cross-host conformance scenarios (`tests/scenarios/**/*.json`, format in
//! `tests/scenarios/README.md`), shared by every Rust host: a host implements [`Subject`] (a
//! cache under test plus direct access to the storage it lent that cache) and calls
//! [`run_all`]. The native core runs it over `MemoryStorage` (`core/tests/conformance.rs`), the
//! `ocicache` crate over the real filesystem (`host-native/tests/conformance.rs`).
//!
//! The runner only reads JSON: it never needs the generator (`tests/scenarios/generate.py`).

// The scenario runner legitimately reads files from the repository.
#![allow(clippy::disallowed_methods)]

use ocicache_core::hashing::digest_of;
use ocicache_core::{
    Algorithm, BuiltinHasher, Config, Digest, Error, Key, Kind, Reference, Resolution, layout,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod pull;
mod subject;
pub use subject::Subject;

/// Scenarios the suite must at least contain.
const MIN_SCENARIOS: usize = 80;
/// Clock start when a scenario gives no `start_ms`.
const DEFAULT_START_MS: u64 = 1_700_000_000_000;

// ----- outcomes -----

/// Why a step did not produce a value.
pub enum Fail {
    /// The core (or the host-level argument parsing) answered with an error of this code.
    Code(String),
    /// The scenario is malformed or the runner cannot do what it asks: the scenario fails.
    Harness(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Code(e.kind().code().to_owned())
    }
}

type StepResult = Result<Value, Fail>;

fn harness(msg: impl Into<String>) -> Fail {
    Fail::Harness(msg.into())
}

fn to_json<T: Serialize>(v: &T) -> StepResult {
    serde_json::to_value(v).map_err(|e| harness(format!("cannot serialize result: {e}")))
}

// ----- arguments -----

struct Args<'a> {
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Args<'a> {
    fn new(v: Option<&'a Value>) -> Result<Args<'a>, Fail> {
        match v {
            None | Some(Value::Null) => Ok(Args { map: None }),
            Some(Value::Object(m)) => Ok(Args { map: Some(m) }),
            Some(other) => Err(harness(format!("args must be an object, got {other}"))),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(name)).filter(|v| !v.is_null())
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn str(&self, name: &str) -> Result<&'a str, Fail> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(harness(format!("arg {name} must be a string, got {other}"))),
            None => Err(harness(format!("missing arg {name}"))),
        }
    }

    fn u64(&self, name: &str) -> Result<u64, Fail> {
        self.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| harness(format!("arg {name} must be a non-negative integer")))
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, Fail> {
        if self.has(name) {
            self.u64(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn bool(&self, name: &str) -> Result<bool, Fail> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(harness(format!(
                "arg {name} must be a boolean, got {other}"
            ))),
        }
    }

    /// A digest argument; a malformed one is the core's `invalid_digest`.
    fn digest(&self, name: &str) -> Result<Digest, Fail> {
        Ok(Digest::parse(self.str(name)?)?)
    }

    fn opt_digest(&self, name: &str) -> Result<Option<Digest>, Fail> {
        if self.has(name) {
            self.digest(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A reference argument; a malformed one is the core's `invalid_reference`.
    fn reference(&self, name: &str) -> Result<Reference, Fail> {
        Ok(Reference::parse(self.str(name)?)?)
    }

    fn kind(&self) -> Result<Kind, Fail> {
        match self.str("kind")? {
            "manifest" => Ok(Kind::Manifest),
            "blob" => Ok(Kind::Blob),
            other => Err(harness(format!("unknown kind {other:?}"))),
        }
    }

    fn key(&self) -> Result<Key, Fail> {
        Ok(Key {
            kind: self.kind()?,
            digest: self.digest("digest")?,
        })
    }

    /// `data` (UTF-8 text) or `data_hex`, repeated `repeat` times (default once).
    fn bytes(&self) -> Result<Vec<u8>, Fail> {
        scenario_bytes(self.map).map_err(harness)
    }

    /// A storage path: `path`, or the entry path of `kind` + `digest`.
    fn path(&self) -> Result<String, Fail> {
        if self.has("path") {
            return Ok(self.str("path")?.to_owned());
        }
        Ok(layout::entry_path(&self.key()?))
    }
}

/// The bytes an argument object describes: `data` (UTF-8 text) or `data_hex`, times `repeat`.
fn scenario_bytes(args: Option<&Map<String, Value>>) -> Result<Vec<u8>, String> {
    let get = |k: &str| args.and_then(|m| m.get(k)).filter(|v| !v.is_null());
    let once = match (get("data"), get("data_hex")) {
        (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
        (None, Some(Value::String(h))) => decode_hex(h)?,
        (None, None) => return Err("missing data or data_hex".into()),
        _ => return Err("give exactly one of data (string) and data_hex (string)".into()),
    };
    match get("repeat") {
        None => Ok(once),
        Some(v) => {
            let n = v.as_u64().ok_or("repeat must be a non-negative integer")?;
            Ok(once.repeat(n as usize))
        }
    }
}

fn decode_hex(h: &str) -> Result<Vec<u8>, String> {
    if !h.len().is_multiple_of(2) || !h.is_ascii() {
        return Err(format!("bad data_hex {h:?}"));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| format!("bad data_hex {h:?}")))
        .collect()
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The shape every byte-returning op uses: size, UTF-8 text (or null) and hex.
fn bytes_value(b: &[u8]) -> Value {
    json!({
        "size": b.len(),
        "data": std::str::from_utf8(b).ok(),
        "data_hex": encode_hex(b),
    })
}

fn resolution_value(r: &Resolution) -> StepResult {
    to_json(r)
}

// ----- the runner -----

/// Plays scenario steps against a subject.
struct Runner<S: Subject> {
    subject: S,
    config: Value,
    writers: BTreeMap<String, S::Writer>,
    readers: BTreeMap<String, S::Reader>,
}

impl<S: Subject> Runner<S> {
    fn new(subject: S, config: Value) -> Runner<S> {
        Runner {
            subject,
            config,
            writers: BTreeMap::new(),
            readers: BTreeMap::new(),
        }
    }

    fn open(&mut self) -> StepResult {
        let config: Config = serde_json::from_value(self.config.clone())
            .map_err(|_| Fail::Code("invalid_config".to_owned()))?;
        let report = self.subject.open(config)?;
        to_json(&report)
    }

    fn close(&mut self, flush: bool) -> Result<(), Fail> {
        let readers = std::mem::take(&mut self.readers).into_values().collect();
        let writers = std::mem::take(&mut self.writers).into_values().collect();
        self.subject.close(flush, writers, readers)?;
        Ok(())
    }

    /// The subject, if a cache is open.
    fn s(&mut self) -> Result<&mut S, Fail> {
        if self.subject.is_open() {
            Ok(&mut self.subject)
        } else {
            Err(harness(
                "no cache is open (a cache.reopen failed or cache.close ran)",
            ))
        }
    }

    fn step(&mut self, op: &str, args: &Args<'_>) -> StepResult {
        match op {
            // --- lifecycle and time ---
            "cache.reopen" => {
                self.close(true)?;
                if let Some(c) = args.get("config") {
                    self.config = c.clone();
                }
                self.open()
            }
            "cache.close" => self.close(true).map(|()| Value::Null),
            "cache.crash" => self.close(false).map(|()| Value::Null),
            "cache.flush" => {
                self.s()?.flush()?;
                Ok(Value::Null)
            }
            "cache.recovery" => to_json(&self.s()?.recovery_report()?),
            "clock.advance" => {
                self.subject.advance_clock(args.u64("ms")?);
                Ok(Value::Null)
            }
            "clock.set" => {
                self.subject.set_clock(args.u64("ms")?);
                Ok(Value::Null)
            }

            // --- manifests ---
            "manifest.put" => {
                let digest = args.digest("digest")?;
                let bytes = args.bytes()?;
                let declared = match args.get("media_type") {
                    Some(_) => Some(args.str("media_type")?),
                    None => None,
                };
                let mt = self.s()?.put_manifest(&digest, &bytes, declared)?;
                Ok(Value::String(mt.as_str().to_owned()))
            }
            "manifest.get" => {
                let digest = args.digest("digest")?;
                let m = self.s()?.get_manifest(&digest)?;
                let data = String::from_utf8(m.bytes)
                    .map_err(|_| harness("a served manifest is not UTF-8"))?;
                Ok(json!({
                    "digest": m.digest.to_string(),
                    "media_type": m.media_type.as_str(),
                    "data": data,
                }))
            }
            "manifest.has" => {
                let digest = args.digest("digest")?;
                Ok(Value::Bool(self.s()?.has_manifest(&digest)?))
            }
            "manifest.delete" => {
                let digest = args.digest("digest")?;
                Ok(Value::Bool(self.s()?.delete_manifest(&digest)?))
            }
            "manifest.references" => {
                let digest = args.digest("digest")?;
                to_json(&self.s()?.manifest_references(&digest)?)
            }

            // --- blobs ---
            "blob.put" => self.blob_put(args),
            "blob.begin" => {
                let handle = args.str("handle")?.to_owned();
                let expected = args.opt_digest("digest")?;
                let size = args.opt_u64("size")?;
                let w = self.s()?.begin_blob(expected.as_ref(), size)?;
                self.writers.insert(handle, w);
                Ok(Value::Null)
            }
            "blob.write" => {
                let handle = args.str("handle")?;
                let bytes = args.bytes()?;
                if !self.subject.is_open() {
                    return Err(harness("no cache is open"));
                }
                let w = self
                    .writers
                    .get_mut(handle)
                    .ok_or_else(|| harness(format!("no writer {handle:?}")))?;
                self.subject.write_blob(w, &bytes)?;
                Ok(Value::Null)
            }
            "blob.commit" => {
                let handle = args.str("handle")?;
                let w = self
                    .writers
                    .remove(handle)
                    .ok_or_else(|| harness(format!("no writer {handle:?}")))?;
                let d = self.s()?.commit_blob(w)?;
                Ok(Value::String(d.to_string()))
            }
            "blob.abort" => {
                let handle = args.str("handle")?;
                let w = self
                    .writers
                    .remove(handle)
                    .ok_or_else(|| harness(format!("no writer {handle:?}")))?;
                self.s()?.abort_blob(w);
                Ok(Value::Null)
            }
            "blob.get" => {
                let digest = args.digest("digest")?;
                let chunk = args.opt_u64("chunk")?;
                let subject = self.s()?;
                let data = match chunk {
                    None => subject.get_blob(&digest)?,
                    Some(n) => {
                        let (mut reader, _) = subject.open_blob(&digest)?;
                        let out = read_up_to(subject, &mut reader, u64::MAX, n as usize);
                        subject.close_blob(reader);
                        out?
                    }
                };
                Ok(bytes_value(&data))
            }
            "blob.open" => {
                let handle = args.str("handle")?.to_owned();
                let digest = args.digest("digest")?;
                let (r, size) = self.s()?.open_blob(&digest)?;
                self.readers.insert(handle, r);
                Ok(json!({ "size": size }))
            }
            "blob.read" => {
                let handle = args.str("handle")?;
                let max = args.opt_u64("max")?.unwrap_or(u64::MAX);
                if !self.subject.is_open() {
                    return Err(harness("no cache is open"));
                }
                let r = self
                    .readers
                    .get_mut(handle)
                    .ok_or_else(|| harness(format!("no reader {handle:?}")))?;
                let data = read_up_to(&mut self.subject, r, max, 1 << 16)?;
                let mut v = bytes_value(&data);
                v["len"] = json!(data.len());
                Ok(v)
            }
            "blob.close" => {
                let handle = args.str("handle")?;
                let r = self
                    .readers
                    .remove(handle)
                    .ok_or_else(|| harness(format!("no reader {handle:?}")))?;
                self.s()?.close_blob(r);
                Ok(Value::Null)
            }
            "blob.has" => {
                let digest = args.digest("digest")?;
                Ok(Value::Bool(self.s()?.has_blob(&digest)?))
            }
            "blob.delete" => {
                let digest = args.digest("digest")?;
                Ok(Value::Bool(self.s()?.delete_blob(&digest)?))
            }

            // --- any entry ---
            "entry.pin" => {
                let key = args.key()?;
                Ok(json!(self.s()?.pin(&key)?))
            }
            "entry.unpin" => {
                let key = args.key()?;
                Ok(json!(self.s()?.unpin(&key)?))
            }
            "entry.delete" => {
                let key = args.key()?;
                Ok(json!(self.s()?.delete(&key)?))
            }

            // --- tags ---
            "tag.put" => {
                let reference = args.reference("reference")?;
                let digest = args.digest("digest")?;
                to_json(&self.s()?.put_tag(&reference, &digest)?)
            }
            "tag.get" => {
                let reference = args.reference("reference")?;
                to_json(&self.s()?.get_tag(&reference)?)
            }
            "tag.has" => {
                let reference = args.reference("reference")?;
                Ok(Value::Bool(self.s()?.has_tag(&reference)?))
            }
            "pull" => {
                if !self.subject.is_open() {
                    return Err(harness("no cache is open"));
                }
                pull::run(&mut self.subject, args.map)
            }
            "tag.resolve" => {
                let reference = args.reference("reference")?;
                resolution_value(&self.s()?.resolve_tag(&reference)?)
            }
            "tag.resolve_many" => self.resolve_many(args),
            "tag.resolve_failed" => {
                let reference = args.reference("reference")?;
                let d = self.s()?.resolve_failed(&reference)?;
                Ok(Value::String(d.to_string()))
            }
            "tag.detect_movement" => {
                let reference = args.reference("reference")?;
                let digest = args.digest("digest")?;
                Ok(Value::Bool(self.s()?.detect_movement(&reference, &digest)?))
            }
            "tag.invalidate" => {
                let reference = args.reference("reference")?;
                Ok(Value::Bool(self.s()?.invalidate_tag(&reference)?))
            }
            "tag.delete" => {
                let reference = args.reference("reference")?;
                Ok(Value::Bool(self.s()?.delete_tag(&reference)?))
            }
            "tag.history" => {
                let reference = args.reference("reference")?;
                to_json(&self.s()?.tag_history(&reference)?)
            }
            "tag.list" => to_json(&self.s()?.tags()?),

            // --- inspection and maintenance ---
            "stats" => to_json(&self.s()?.stats()?),
            "metrics" => to_json(&self.s()?.metrics()?),
            "size" => Ok(json!(self.s()?.size()?)),
            "contents" => to_json(&self.s()?.contents()?),
            "debug_info" => to_json(&self.s()?.debug_info()?),
            "integrity.check" => to_json(&self.s()?.check_integrity()?),
            "integrity.repair" => to_json(&self.s()?.repair()?),
            "integrity.validate_digests" => {
                let (valid, invalid) = self.s()?.validate_digests()?;
                Ok(json!({ "valid": valid, "invalid": invalid }))
            }
            "clear_expired" => Ok(json!(self.s()?.clear_expired()?)),
            "cleanup" => to_json(&self.s()?.cleanup()?),
            "clear" => {
                self.s()?.clear()?;
                Ok(Value::Null)
            }

            // --- the host's storage, bypassing the cache ---
            "storage.corrupt" => {
                let path = args.path()?;
                let offset = args.u64("offset")?;
                Ok(Value::Bool(
                    self.subject
                        .storage_corrupt(&path, offset)
                        .map_err(harness)?,
                ))
            }
            "storage.truncate" => {
                let path = args.path()?;
                let size = self
                    .subject
                    .storage_read(&path)
                    .map_err(harness)?
                    .map_or(0, |b| b.len() as u64);
                let len = match args.opt_u64("drop")? {
                    Some(n) => size.saturating_sub(n),
                    None => args.u64("len")?,
                };
                self.subject.storage_truncate(&path, len).map_err(harness)?;
                Ok(Value::Null)
            }
            "storage.remove" => {
                let path = args.path()?;
                self.subject
                    .storage_remove(&path)
                    .map_err(|e| harness(format!("storage.remove: {e}")))?;
                Ok(Value::Null)
            }
            "storage.plant" => {
                let path = args.path()?;
                let bytes = args.bytes()?;
                self.subject.storage_plant(&path, &bytes).map_err(harness)?;
                Ok(Value::Null)
            }
            "storage.exists" => {
                let path = args.path()?;
                Ok(Value::Bool(
                    self.subject.storage_read(&path).map_err(harness)?.is_some(),
                ))
            }
            "storage.read" => {
                let path = args.path()?;
                Ok(self
                    .subject
                    .storage_read(&path)
                    .map_err(harness)?
                    .map_or(Value::Null, |b| bytes_value(&b)))
            }
            "storage.list" => {
                let dir = args.str("dir")?;
                let names = self
                    .subject
                    .storage_list(dir)
                    .map_err(|e| harness(format!("storage.list: {e}")))?;
                Ok(json!(names))
            }
            "storage.bytes" => {
                let dir = args.str("dir")?.trim_end_matches('/');
                Ok(json!(self.subject.storage_bytes(dir).map_err(harness)?))
            }
            "storage.temps" => Ok(json!(self.subject.storage_temps().map_err(harness)?)),

            other => Err(harness(format!("unknown op {other:?}"))),
        }
    }

    fn blob_put(&mut self, args: &Args<'_>) -> StepResult {
        let expected = args.opt_digest("digest")?;
        let size = args.opt_u64("size")?;
        let bytes = args.bytes()?;
        let chunks: Vec<usize> = match args.get("chunks") {
            None => vec![bytes.len()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .map(|n| n as usize)
                        .ok_or_else(|| harness("chunks must be integers"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(harness(format!("chunks must be an array, got {other}"))),
        };
        if chunks.iter().sum::<usize>() != bytes.len() {
            return Err(harness("chunk sizes must add up to the data length"));
        }
        let abort = args.bool("abort")?;
        let subject = self.s()?;
        let mut w = subject.begin_blob(expected.as_ref(), size)?;
        let mut at = 0;
        for n in chunks {
            // On error the core aborts the writer itself; the subject disposes of the handle.
            if let Err(e) = subject.write_blob(&mut w, &bytes[at..at + n]) {
                subject.abort_blob(w);
                return Err(e.into());
            }
            at += n;
        }
        if abort {
            subject.abort_blob(w);
            return Ok(Value::Null);
        }
        Ok(Value::String(subject.commit_blob(w)?.to_string()))
    }

    fn resolve_many(&mut self, args: &Args<'_>) -> StepResult {
        let list = match args.get("references") {
            Some(Value::Array(a)) => a,
            _ => return Err(harness("references must be an array of strings")),
        };
        // Parse each; an unparsable reference is that item's error, not the whole call's.
        let mut parsed = Vec::new();
        let mut slots = Vec::new();
        for v in list {
            let s = v
                .as_str()
                .ok_or_else(|| harness("references must be strings"))?;
            match Reference::parse(s) {
                Ok(r) => {
                    slots.push(Ok(parsed.len()));
                    parsed.push(r);
                }
                Err(e) => slots.push(Err(e.kind().code())),
            }
        }
        let results = self.s()?.resolve_tags(&parsed)?;
        let mut out = Vec::new();
        for slot in slots {
            out.push(match slot {
                Ok(i) => match &results[i] {
                    Ok(r) => {
                        json!({ "ok": resolution_value(r).map_err(|_| harness("serialize"))? })
                    }
                    Err(e) => json!({ "error": e.kind().code() }),
                },
                Err(code) => json!({ "error": code }),
            });
        }
        Ok(Value::Array(out))
    }
}

/// Reads up to `max` bytes from `reader` in chunks of `chunk` bytes.
fn read_up_to<S: Subject>(
    subject: &mut S,
    reader: &mut S::Reader,
    max: u64,
    chunk: usize,
) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    while (out.len() as u64) < max {
        let want = usize::try_from(max - out.len() as u64)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = subject.read_blob(reader, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

// ----- matching -----

/// Whether `actual` matches `expected`: objects as subsets (recursively), arrays element-wise
/// with equal length, numbers numerically, everything else by equality. Returns where it
/// differs.
pub fn matches(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let path = format!("{at}.{k}");
                match a.get(k) {
                    Some(av) => matches(ev, av, &path)?,
                    None => return Err(format!("{path}: missing (expected {ev})")),
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{at}: expected {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) => {
            let same = match (e.as_u64(), a.as_u64(), e.as_i64(), a.as_i64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => {
                    let (x, y) = (
                        e.as_f64().unwrap_or(f64::NAN),
                        a.as_f64().unwrap_or(f64::NAN),
                    );
                    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
                }
            };
            if same {
                Ok(())
            } else {
                Err(format!("{at}: expected {e}, got {a}"))
            }
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at}: expected {expected}, got {actual}")),
    }
}

// ----- scenarios -----

/// The scenario directory of the workspace (`tests/scenarios`).
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn find_json(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            find_json(&path, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
}

/// Every scenario under [`scenarios_dir`], as (name from its path, parsed JSON), sorted.
pub fn load_scenarios() -> Vec<(String, Value)> {
    let root = scenarios_dir();
    let mut files = Vec::new();
    find_json(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under the root")
                .with_extension("")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (rel, v)
        })
        .collect()
}

/// Plays one scenario against a fresh subject made by `make(start_ms)`; returns the number of
/// steps, or the first failure (naming the step).
pub fn play<S: Subject>(
    rel: &str,
    scenario: &Value,
    make: impl FnOnce(u64) -> S,
) -> Result<usize, String> {
    let name = scenario["name"].as_str().ok_or("missing name")?;
    if name != rel {
        return Err(format!("name {name:?} does not match its file {rel:?}"));
    }
    let config = scenario.get("config").cloned().unwrap_or(json!({}));
    let start = match scenario.get("start_ms") {
        None => DEFAULT_START_MS,
        Some(v) => v
            .as_u64()
            .ok_or("start_ms must be a non-negative integer")?,
    };
    let steps = scenario["steps"].as_array().ok_or("missing steps")?;
    let mut runner = Runner::new(make(start), config);
    if let Err(f) = runner.open() {
        return Err(match f {
            Fail::Code(c) => format!("opening with the scenario's config failed: {c}"),
            Fail::Harness(m) => m,
        });
    }
    for (i, step) in steps.iter().enumerate() {
        let op = step["op"]
            .as_str()
            .ok_or_else(|| format!("step {i}: missing op"))?;
        let fail = |msg: String| format!("step {i} ({op}): {msg}");
        let args = Args::new(step.get("args")).map_err(|f| match f {
            Fail::Harness(m) | Fail::Code(m) => fail(m),
        })?;
        let result = runner.step(op, &args);
        let result = match result {
            Err(Fail::Harness(m)) => return Err(fail(format!("runner: {m}"))),
            Ok(v) => Ok(v),
            Err(Fail::Code(c)) => Err(c),
        };
        let shown = |r: &Result<Value, String>| match r {
            Ok(v) => format!("ok {v}"),
            Err(c) => format!("error {c:?}"),
        };
        match step.get("expect") {
            None => {
                if let Err(c) = &result {
                    return Err(fail(format!("expected success, got error {c:?}")));
                }
            }
            Some(Value::Object(e)) if e.len() == 1 && e.contains_key("ok") => match &result {
                Ok(actual) => matches(&e["ok"], actual, "$")
                    .map_err(|m| fail(format!("{m}\n      actual: {}", shown(&result))))?,
                Err(_) => {
                    return Err(fail(format!(
                        "expected ok {}, got {}",
                        e["ok"],
                        shown(&result)
                    )));
                }
            },
            Some(Value::Object(e)) if e.len() == 1 && e.contains_key("error") => {
                let want = e["error"]
                    .as_str()
                    .ok_or_else(|| fail("error must be a code".into()))?;
                if result.as_ref().err().map(String::as_str) != Some(want) {
                    return Err(fail(format!(
                        "expected error {want:?}, got {}",
                        shown(&result)
                    )));
                }
            }
            Some(other) => return Err(fail(format!("bad expect {other}"))),
        }
    }
    // Closing is an operation like any other: a scenario whose final close fails fails.
    runner.close(true).map_err(|f| match f {
        Fail::Code(c) => format!("closing the cache at the end failed: {c}"),
        Fail::Harness(m) => format!("closing the cache at the end: {m}"),
    })?;
    Ok(steps.len())
}

/// Plays every scenario against fresh subjects made by `make(start_ms)`; panics listing every
/// failing scenario (name, step, op, expected and actual). Returns (scenarios, steps) played.
pub fn run_all<S: Subject>(mut make: impl FnMut(u64) -> S) -> (usize, usize) {
    let scenarios = load_scenarios();
    assert!(
        scenarios.len() >= MIN_SCENARIOS,
        "found {} scenarios under {}, expected at least {MIN_SCENARIOS}",
        scenarios.len(),
        scenarios_dir().display()
    );
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut steps = 0;
    for (rel, scenario) in &scenarios {
        match play(rel, scenario, &mut make) {
            Ok(n) => {
                passed += 1;
                steps += n;
            }
            Err(msg) => failures.push(format!("{rel}: {msg}")),
        }
    }
    println!(
        "conformance: {passed} of {} scenarios passed ({steps} steps)",
        scenarios.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n  {}",
        failures.len(),
        scenarios.len(),
        failures.join("\n  ")
    );
    (passed, steps)
}

/// Checks that every put whose `data` is meant to match its `digest` (expected to succeed, or
/// to fail for a reason other than the digest) really hashes to it, and that every digest
/// written in the files parses; so a typo in a file cannot turn a positive scenario into a
/// negative one. Returns how many were checked; panics listing the problems.
pub fn check_literal_digests() -> usize {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (rel, scenario) in load_scenarios() {
        let Some(steps) = scenario["steps"].as_array() else {
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            let op = step["op"].as_str().unwrap_or("");
            let args = &step["args"];
            let expect_error = step["expect"]["error"].as_str();
            let digest_related = matches!(expect_error, Some("digest_mismatch" | "invalid_digest"));
            let is_put = matches!(op, "manifest.put" | "blob.put");
            if !is_put || digest_related {
                continue;
            }
            let Some(digest) = args["digest"].as_str() else {
                continue;
            };
            let Ok(digest) = Digest::parse(digest) else {
                problems.push(format!("{rel} step {i}: unparsable digest {digest}"));
                continue;
            };
            let data = match scenario_bytes(args.as_object()) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("{rel} step {i}: {e}"));
                    continue;
                }
            };
            let algorithm: Algorithm = digest.algorithm();
            let actual = digest_of(&BuiltinHasher, algorithm, &data).expect("the built-in hasher");
            checked += 1;
            if actual != digest {
                problems.push(format!(
                    "{rel} step {i} ({op}): data hashes to {actual}, file says {digest}"
                ));
            }
        }
    }
    assert!(checked > 0, "no digest was checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    checked
}

#[cfg(test)]
mod tests;
