//! The `ocicache` command line: the OCI artifact cache in a directory, from the shell.
//!
//! Run `ocicache --help` for commands and exit codes.

mod args;
mod exit;
mod progress;
mod pull;

use args::{BlobCmd, Cli, Command, DebugCmd, KindArg, ManifestCmd, TagCmd};
use exit::{Failure, Outcome};
use ocicache::ocicache_core::hashing::digest_of;
use ocicache::ocicache_core::{Algorithm, BuiltinHasher};
use ocicache::{Cache, Config, Digest, EngineKind, Error, ErrorKind, Key, ManualClock, Reference};
use serde_json::{Value, json};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Chunk size for streaming blobs in and out.
const CHUNK: usize = 1 << 20;

fn main() {
    let cli = <Cli as clap::Parser>::parse();
    let code = match run(&cli) {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::NotOk) => exit::NOT_OK,
        Err(f) => {
            eprintln!("ocicache: {}: {}", f.code, f.message);
            f.exit
        }
    };
    std::process::exit(code);
}

/// The default cache directory: `$XDG_CACHE_HOME/ocicache`, else `~/.cache/ocicache`.
fn default_dir() -> Result<PathBuf, Failure> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return Ok(p.join("ocicache"));
        }
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("ocicache")),
        None => Err(Failure::usage(
            "no cache directory: pass --dir, or set XDG_CACHE_HOME or HOME",
        )),
    }
}

/// The configuration in force: `config.json` from the directory (if any), then flags.
fn effective_config(cli: &Cli, dir: &Path) -> Result<Config, Failure> {
    let mut config = ocicache::load_config(dir)?.unwrap_or_default();
    if let Some(m) = cli.max_bytes {
        config.max_bytes = m;
    }
    Ok(config)
}

fn open(cli: &Cli) -> Result<Cache, Failure> {
    let dir = match &cli.dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    let config = effective_config(cli, &dir)?;
    let engine = match cli.engine {
        args::EngineArg::Native => EngineKind::Native,
        args::EngineArg::Component => EngineKind::Component,
    };
    let mut builder = Cache::builder(&dir)
        .config(config)
        .engine(engine)
        .adopt_existing(matches!(cli.command, Command::Init));
    if cli.verbose {
        builder = builder.log(StderrLog);
    }
    Ok(builder.open()?)
}

/// Prints the core's warnings and errors on stderr (`--verbose`).
struct StderrLog;

impl ocicache::LogSink for StderrLog {
    fn log(&self, level: ocicache::Level, message: &str, fields: &[(&str, &str)]) {
        if level >= ocicache::Level::Info {
            let mut line = format!("ocicache: {level:?}: {message}").to_lowercase();
            for (k, v) in fields {
                line.push_str(&format!(" {k}={v}"));
            }
            eprintln!("{line}");
        }
    }
}

/// Parses every digest and reference argument before the cache is opened, so that bad input
/// fails without touching (or creating) the directory.
fn precheck(cli: &Cli) -> Result<(), Failure> {
    let mut digests: Vec<&str> = Vec::new();
    let mut references: Vec<&str> = Vec::new();
    match &cli.command {
        Command::Blob(BlobCmd::Put { digest, .. })
        | Command::Manifest(ManifestCmd::Put { digest, .. }) => {
            digests.extend(digest.as_deref());
        }
        Command::Blob(
            BlobCmd::Get { digest, .. } | BlobCmd::Has { digest } | BlobCmd::Rm { digest },
        )
        | Command::Manifest(ManifestCmd::Get { digest })
        | Command::Pin { digest, .. }
        | Command::Unpin { digest, .. } => digests.push(digest),
        Command::Tag(TagCmd::Set { reference, digest }) => {
            references.push(reference);
            digests.push(digest);
        }
        Command::Tag(
            TagCmd::Get { reference } | TagCmd::History { reference } | TagCmd::Rm { reference },
        ) => references.push(reference),
        Command::Pull(args) => {
            references.push(&args.reference);
            pull::precheck(args)?;
        }
        Command::Export { reference, .. } => references.push(reference),
        Command::Import {
            name: Some(name), ..
        } => {
            ocicache::ocicache_core::image_layout::repository_name(name)?;
        }
        _ => {}
    }
    for d in digests {
        parse_digest(d)?;
    }
    for r in references {
        parse_reference(r)?;
    }
    if let Command::Tag(cmd) = &cli.command {
        precheck_tag(cmd)?;
    }
    Ok(())
}

/// Refuses the tag arguments the core refuses whatever a cache holds (a reference without a
/// tag, one that pins another digest than the one given), before anything is opened. The core
/// itself is asked, on an empty cache in memory, so the rules stay the core's alone.
fn precheck_tag(cmd: &TagCmd) -> Result<(), Failure> {
    use ocicache::ocicache_core::storage::MemoryStorage;
    let mut core =
        ocicache::ocicache_core::Cache::builder(MemoryStorage::new(), ManualClock::new(0))
            .open()?;
    let answer = match cmd {
        TagCmd::Set { reference, digest } => core
            .put_tag(&parse_reference(reference)?, &parse_digest(digest)?)
            .map(drop),
        TagCmd::Get { reference } => core.get_tag(&parse_reference(reference)?).map(drop),
        TagCmd::History { reference } => core.tag_history(&parse_reference(reference)?).map(drop),
        TagCmd::Rm { reference } => core.delete_tag(&parse_reference(reference)?).map(drop),
    };
    match answer {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidReference | ErrorKind::InvalidDigest | ErrorKind::InvalidArgument
            ) =>
        {
            Err(e.into())
        }
        // Anything else (`not_found` here) depends on what the real cache holds.
        _ => Ok(()),
    }
}

fn run(cli: &Cli) -> Result<Outcome, Failure> {
    precheck(cli)?;
    let cache = open(cli)?;
    let outcome = command(cli, &cache);
    // Close even after a failed command: a clean shutdown makes the next open fast. What the
    // command did is durable already (an operation returns once its record is), so a close
    // that fails (a full disk) loses only the clean-shutdown record and buffered access
    // times: the next open walks the files instead. It is reported, and the command's own
    // outcome stands.
    if let Err(e) = cache.close() {
        eprintln!(
            "ocicache: warning: closing the cache: {e} (the next open will check every file)"
        );
    }
    outcome
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::io(e.to_string()))?;
    println_out(&text)
}

fn println_out(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io(format!("writing to stdout: {e}")))
}

fn parse_digest(s: &str) -> Result<Digest, Failure> {
    Ok(Digest::parse(s)?)
}

fn parse_reference(s: &str) -> Result<Reference, Failure> {
    Ok(Reference::parse(s)?)
}

fn key(kind: KindArg, digest: &str) -> Result<Key, Failure> {
    let digest = parse_digest(digest)?;
    Ok(match kind {
        KindArg::Manifest => Key::manifest(digest),
        KindArg::Blob => Key::blob(digest),
    })
}

/// Prints a boolean answer and turns `false` into exit code 1.
fn answer(cli: &Cli, field: &str, yes: bool) -> Result<Outcome, Failure> {
    if cli.json {
        print_json(&json!({ field: yes }))?;
    } else {
        println_out(if yes { "true" } else { "false" })?;
    }
    Ok(if yes { Outcome::Ok } else { Outcome::NotOk })
}

fn command(cli: &Cli, cache: &Cache) -> Result<Outcome, Failure> {
    match &cli.command {
        Command::Blob(cmd) => blob(cli, cache, cmd),
        Command::Manifest(cmd) => manifest(cli, cache, cmd),
        Command::Tag(cmd) => tag(cli, cache, cmd),
        Command::Ls => {
            let contents = cache.contents()?;
            let tags = cache.tags()?;
            if cli.json {
                print_json(&json!({ "contents": contents, "tags": tags }))?;
            } else {
                let mut text = String::new();
                for e in &contents {
                    let mut flags = Vec::new();
                    if e.pins > 0 {
                        flags.push(format!("pinned×{}", e.pins));
                    }
                    if e.expired {
                        flags.push("expired".into());
                    }
                    if e.quarantined {
                        flags.push("quarantined".into());
                    }
                    text.push_str(&format!(
                        "{:<8} {} {:>12} {}\n",
                        e.kind.name(),
                        e.digest,
                        e.size,
                        flags.join(",")
                    ));
                }
                for t in &tags {
                    text.push_str(&format!("tag      {} -> {}\n", t.reference, t.digest));
                }
                print!("{text}");
            }
            Ok(Outcome::Ok)
        }
        Command::Stats { prometheus } => {
            if *prometheus {
                print!("{}", cache.metrics_prometheus()?);
            } else if cli.json {
                print_json(&json!({ "stats": cache.stats()?, "metrics": cache.metrics()? }))?;
            } else {
                let s = cache.stats()?;
                println_out(&format!(
                    "entries      {} ({} manifests, {} blobs)\ntags         {}\nbytes        {} of {}\nexpired      {}\npinned       {}\nquarantined  {}",
                    s.total_entries,
                    s.manifests,
                    s.blobs,
                    s.tags,
                    s.total_size,
                    s.max_size,
                    s.expired_entries,
                    s.pinned_entries,
                    s.quarantined_entries
                ))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Verify => {
            let spinner = progress::spinner("verifying");
            let report = cache.check_integrity();
            progress::finish(spinner);
            let report = report?;
            if cli.json {
                print_json(&report)?;
            } else {
                let mut text = format!(
                    "checked {}, valid {}, corrupted {}, missing {}, quarantined {}, unindexed {}",
                    report.checked,
                    report.valid,
                    report.corrupted.len(),
                    report.missing.len(),
                    report.quarantined.len(),
                    report.unindexed.len()
                );
                for (label, list) in [
                    ("corrupted", &report.corrupted),
                    ("missing", &report.missing),
                    ("quarantined", &report.quarantined),
                    ("unindexed", &report.unindexed),
                ] {
                    for i in list {
                        text.push_str(&format!("\n{label}: {}: {}", i.what, i.detail));
                    }
                }
                text.push_str(if report.healthy {
                    "\nhealthy"
                } else {
                    "\nUNHEALTHY (run `ocicache repair`)"
                });
                println_out(&text)?;
            }
            Ok(if report.healthy {
                Outcome::Ok
            } else {
                Outcome::NotOk
            })
        }
        Command::Repair => {
            let r = cache.repair()?;
            if cli.json {
                print_json(&r)?;
            } else {
                println_out(&format!(
                    "removed corrupted {}, removed missing {}, adopted {}, removed unindexed {}, temps removed {}",
                    r.removed_corrupted,
                    r.removed_missing,
                    r.adopted,
                    r.removed_unindexed,
                    r.temps_removed
                ))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Gc => {
            // One cleanup: it removes expired entries first, and its report counts them.
            let r = cache.cleanup()?;
            if cli.json {
                print_json(&r)?;
            } else {
                println_out(&format!(
                    "expired removed {}, evicted {}, bytes freed {}",
                    r.expired_removed, r.evicted, r.bytes_freed
                ))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Pin { kind, digest } | Command::Unpin { kind, digest } => {
            let key = key(*kind, digest)?;
            let pins = if matches!(cli.command, Command::Pin { .. }) {
                cache.pin(&key)?
            } else {
                cache.unpin(&key)?
            };
            if cli.json {
                print_json(&json!({ "pins": pins }))?;
            } else {
                println_out(&pins.to_string())?;
            }
            Ok(Outcome::Ok)
        }
        Command::Debug(DebugCmd::Export { file }) => {
            let text = cache.export_debug_json()?;
            if file.as_os_str() == "-" {
                println_out(&text)?;
            } else {
                write_file_atomically(file, |f| f.write_all(text.as_bytes()))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Export { reference, layout } => export(cli, cache, reference, layout),
        Command::Import { source, name } => import(cli, cache, source, name.as_deref()),
        Command::Init => {
            let r = cache.recovery_report()?;
            if cli.json {
                print_json(&r)?;
            } else {
                println_out(&format!(
                    "{}: adopted {}, left alone {}",
                    cache.dir().display(),
                    r.orphans_adopted,
                    r.foreign_files
                ))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Pull(args) => pull::run(cli, cache, args),
        Command::Config => {
            let config = cache.config()?;
            // The pull's settings share config.json (platform, auth_file, registries).
            let pull = ocicache::load_pull_config(cache.dir())?;
            let mut all = serde_json::to_value(&config).map_err(|e| Failure::io(e.to_string()))?;
            if let (Value::Object(map), Value::Object(extra)) = (
                &mut all,
                serde_json::to_value(&pull).map_err(|e| Failure::io(e.to_string()))?,
            ) {
                map.extend(extra);
            }
            if cli.json {
                print_json(&all)?;
            } else {
                println_out(&toml_ish(&all))?;
            }
            Ok(Outcome::Ok)
        }
    }
}

/// `key = value` lines of the configuration's serde form.
fn toml_ish(config: &Value) -> String {
    let Value::Object(map) = config else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn blob(cli: &Cli, cache: &Cache, cmd: &BlobCmd) -> Result<Outcome, Failure> {
    match cmd {
        BlobCmd::Put { file, digest } => {
            let expected = digest.as_deref().map(parse_digest).transpose()?;
            let (mut input, size): (Box<dyn Read>, Option<u64>) = if file.as_os_str() == "-" {
                (Box::new(io::stdin().lock()), None)
            } else {
                let f = File::open(file)
                    .map_err(|e| Failure::io(format!("{}: {e}", file.display())))?;
                let meta = f
                    .metadata()
                    .map_err(|e| Failure::io(format!("{}: {e}", file.display())))?;
                // A regular file's length is announced: the cache checks it (and the cap) early.
                // A length of 0 is no announcement: procfs and sysfs report 0 for files that
                // are not empty (`/proc/version`); an empty file stores the same either way.
                let size = (meta.is_file() && meta.len() > 0).then_some(meta.len());
                (Box::new(f), size)
            };
            let mut writer = cache.blob_writer(expected.as_ref(), size)?;
            let bar = progress::bytes(size, "storing");
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::io(format!("reading {}: {e}", file.display()))),
                };
                io::Write::write_all(&mut writer, &buf[..n]).map_err(Failure::from_io)?;
                progress::inc(&bar, n);
            }
            progress::finish(bar);
            let digest = writer.commit()?;
            ocicache::test_pause::point("after-commit-record");
            if cli.json {
                print_json(&json!({ "digest": digest }))?;
            } else {
                println_out(&digest.to_string())?;
            }
            Ok(Outcome::Ok)
        }
        BlobCmd::Get { digest, output } => {
            let digest = parse_digest(digest)?;
            let mut reader = cache.blob_reader(&digest)?;
            let bar = progress::bytes(Some(reader.size()), "reading");
            let result = match output {
                Some(path) if path.as_os_str() != "-" => match output_kind(path)? {
                    Output::File(path) => {
                        write_file_atomically(&path, |f| copy_blob(&mut reader, f, &bar))
                    }
                    // A device or a pipe (`-o /dev/null`, a FIFO) is written in place: renaming
                    // a temp onto it would replace the device node with a regular file.
                    Output::Special(path) => OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|mut f| copy_blob(&mut reader, &mut f, &bar))
                        .map_err(|e| Failure::io(format!("{}: {e}", path.display()))),
                },
                _ => {
                    let mut out = io::stdout().lock();
                    copy_blob(&mut reader, &mut out, &bar)
                        .and_then(|()| out.flush())
                        .map_err(Failure::from_io)
                }
            };
            progress::finish(bar);
            result?;
            Ok(Outcome::Ok)
        }
        BlobCmd::Has { digest } => {
            let d = parse_digest(digest)?;
            answer(cli, "present", cache.has_blob(&d)?)
        }
        BlobCmd::Rm { digest } => {
            let d = parse_digest(digest)?;
            let removed = cache.delete_blob(&d)?;
            if cli.json {
                print_json(&json!({ "removed": removed }))?;
            } else {
                println_out(if removed { "removed" } else { "not present" })?;
            }
            Ok(Outcome::Ok)
        }
    }
}

fn copy_blob(
    reader: &mut ocicache::BlobReader,
    out: &mut dyn Write,
    bar: &Option<indicatif::ProgressBar>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        progress::inc(bar, n);
    }
}

/// Where `blob get -o PATH` writes.
enum Output {
    /// A regular file, new or existing (through a symbolic link: its target), written
    /// atomically.
    File(PathBuf),
    /// An existing device, FIFO or socket, written in place.
    Special(PathBuf),
}

fn output_kind(path: &Path) -> Result<Output, Failure> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Failure::io(format!("{}: is a directory", path.display()))),
        Ok(m) => {
            // Resolve symbolic links: the link keeps pointing at the file it names.
            let target = fs::canonicalize(path)
                .map_err(|e| Failure::io(format!("{}: {e}", path.display())))?;
            Ok(if m.is_file() {
                Output::File(target)
            } else {
                Output::Special(target)
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Output::File(path.to_path_buf())),
        Err(e) => Err(Failure::io(format!("{}: {e}", path.display()))),
    }
}

/// Writes `path` through a temp file next to it, renamed onto `path` only if `write`
/// succeeded completely (so a failed or corrupted read never leaves a wrong file).
fn write_file_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), Failure> {
    let name = path
        .file_name()
        .ok_or_else(|| Failure::usage(format!("{}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A run killed while writing leaves its temp behind, and a later process may get its id:
    // such a name is taken, so the next one is tried (the stale temp is not ours to remove).
    let mut attempt = 0u32;
    let (temp, mut file) = loop {
        let suffix = if attempt == 0 {
            String::new()
        } else {
            format!("-{attempt}")
        };
        let temp = dir.join(format!(
            ".{}.ocicache-{}{suffix}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(Failure::io(format!("{}: {e}", temp.display()))),
        }
    };
    let result = write(&mut file).and_then(|()| file.sync_all());
    drop(file);
    match result {
        Ok(()) => fs::rename(&temp, path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            Failure::io(format!("{}: {e}", path.display()))
        }),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(Failure::from_io(e))
        }
    }
}

fn manifest(cli: &Cli, cache: &Cache, cmd: &ManifestCmd) -> Result<Outcome, Failure> {
    match cmd {
        ManifestCmd::Put {
            file,
            digest,
            media_type,
        } => {
            let limit = cache.config()?.max_manifest_bytes;
            let mut bytes = Vec::new();
            let read = if file.as_os_str() == "-" {
                io::stdin().lock().take(limit + 1).read_to_end(&mut bytes)
            } else {
                File::open(file).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            };
            read.map_err(|e| Failure::io(format!("{}: {e}", file.display())))?;
            if bytes.len() as u64 > limit {
                return Err(Error::TooLarge {
                    size: bytes.len() as u64,
                    limit,
                }
                .into());
            }
            let digest = match digest {
                Some(d) => parse_digest(d)?,
                None => digest_of(&BuiltinHasher, Algorithm::Sha256, &bytes)
                    .expect("the built-in hasher does not fail"),
            };
            let mt = cache.put_manifest(&digest, &bytes, media_type.as_deref())?;
            if cli.json {
                print_json(&json!({ "digest": digest, "media_type": mt.as_str() }))?;
            } else {
                println_out(&format!("{digest} {}", mt.as_str()))?;
            }
            Ok(Outcome::Ok)
        }
        ManifestCmd::Get { digest } => {
            let digest = parse_digest(digest)?;
            let m = cache.get_manifest(&digest)?;
            if cli.json {
                print_json(&json!({
                    "digest": m.digest,
                    "media_type": m.media_type.as_str(),
                    "data": String::from_utf8_lossy(&m.bytes),
                }))?;
            } else {
                let mut out = io::stdout().lock();
                out.write_all(&m.bytes)
                    .and_then(|()| out.flush())
                    .map_err(Failure::from_io)?;
            }
            Ok(Outcome::Ok)
        }
    }
}

fn tag(cli: &Cli, cache: &Cache, cmd: &TagCmd) -> Result<Outcome, Failure> {
    match cmd {
        TagCmd::Set { reference, digest } => {
            let r = parse_reference(reference)?;
            let d = parse_digest(digest)?;
            let update = cache.put_tag(&r, &d)?;
            if cli.json {
                print_json(&update)?;
            } else {
                println_out(&match (&update.previous, update.moved) {
                    (Some(p), true) => format!("moved from {p}"),
                    (Some(_), false) => "unchanged".to_owned(),
                    (None, _) => "new".to_owned(),
                })?;
            }
            Ok(Outcome::Ok)
        }
        TagCmd::Get { reference } => {
            let r = parse_reference(reference)?;
            let m = cache.get_tag(&r)?;
            if cli.json {
                print_json(&m)?;
            } else {
                println_out(&m.digest.to_string())?;
            }
            Ok(Outcome::Ok)
        }
        TagCmd::History { reference } => {
            let r = parse_reference(reference)?;
            let h = cache.tag_history(&r)?;
            if cli.json {
                print_json(&h)?;
            } else {
                let lines: Vec<String> = h
                    .iter()
                    .map(|e| format!("{} {}", e.changed_at, e.digest))
                    .collect();
                println_out(&lines.join("\n"))?;
            }
            Ok(Outcome::Ok)
        }
        TagCmd::Rm { reference } => {
            let r = parse_reference(reference)?;
            let removed = cache.delete_tag(&r)?;
            if cli.json {
                print_json(&json!({ "removed": removed }))?;
            } else {
                println_out(if removed { "removed" } else { "not present" })?;
            }
            Ok(Outcome::Ok)
        }
    }
}

fn export(cli: &Cli, cache: &Cache, reference: &str, dir: &Path) -> Result<Outcome, Failure> {
    let reference = parse_reference(reference)?;
    let spinner = progress::spinner("exporting");
    let report = cache.export(&reference, dir);
    progress::finish(spinner);
    let r = report?;
    if cli.json {
        print_json(&r)?;
    } else {
        let mut text = format!(
            "exported {} ({} {}) to {}: {} manifests, {} blobs of {} bytes ({} linked, {} copied, {} already there)",
            r.reference,
            r.digest,
            r.media_type.as_str(),
            r.dir.display(),
            r.manifests,
            r.blobs,
            r.bytes,
            r.linked,
            r.copied,
            r.already_present
        );
        if r.tag_stale {
            text.push_str("\nthe cached tag is past its freshness window: exported as cached");
        }
        for d in &r.replaced {
            text.push_str(&format!("\nthe tag named {d} in the layout before"));
        }
        println_out(&text)?;
    }
    Ok(Outcome::Ok)
}

/// Splits `DIR[:TAG]`: a path naming an existing directory as a whole is DIR; otherwise a
/// tag after the last `:` (with no `/` in it) is TAG.
fn layout_source(source: &str) -> (PathBuf, Option<String>) {
    if Path::new(source).is_dir() {
        return (PathBuf::from(source), None);
    }
    match source.rsplit_once(':') {
        Some((dir, tag)) if !dir.is_empty() && !tag.is_empty() && !tag.contains('/') => {
            (PathBuf::from(dir), Some(tag.to_owned()))
        }
        _ => (PathBuf::from(source), None),
    }
}

fn import(cli: &Cli, cache: &Cache, source: &str, name: Option<&str>) -> Result<Outcome, Failure> {
    let (dir, tag) = layout_source(source);
    let mut options = ocicache::ImportOptions::default();
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    if let Some(name) = name {
        options = options.repository(name);
    }
    let spinner = progress::spinner("importing");
    let report = cache.import_with(&dir, &options);
    progress::finish(spinner);
    let r = report?;
    if cli.json {
        print_json(&r)?;
    } else {
        let mut lines: Vec<String> = r
            .images
            .iter()
            .map(|i| {
                format!(
                    "{} {} {}",
                    i.digest,
                    i.media_type.as_str(),
                    i.tag.as_deref().unwrap_or("(no tag)")
                )
            })
            .collect();
        lines.push(format!(
            "stored {} manifests, {} blobs ({} bytes); already cached {} manifests, {} blobs",
            r.manifests_stored,
            r.blobs_stored,
            r.bytes_stored,
            r.manifests_present,
            r.blobs_present
        ));
        println_out(&lines.join("\n"))?;
    }
    Ok(Outcome::Ok)
}

/// Whether progress bars may be drawn (stderr is a terminal).
fn interactive() -> bool {
    io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `blob get -o` killed mid-write leaves its temp beside the output; a later process
    /// with the same id must still write the output, and leave that temp alone.
    #[test]
    fn a_stale_temp_beside_the_output_does_not_block_writing_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let stale = dir
            .path()
            .join(format!(".out.ocicache-{}.tmp", std::process::id()));
        std::fs::write(&stale, b"left by a killed run").unwrap();
        write_file_atomically(&out, |f| f.write_all(b"bytes")).unwrap_or_else(|f| {
            panic!("{}: {}", f.code, f.message);
        });
        assert_eq!(std::fs::read(&out).unwrap(), b"bytes");
        assert_eq!(std::fs::read(&stale).unwrap(), b"left by a killed run");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
