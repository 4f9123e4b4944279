//! `ocicache pull`: the library's [`Cache::pull_with`] with a progress bar per layer on a
//! terminal, the report on stdout (`--json` for all of it).

use crate::args::{Cli, PullArgs};
use crate::exit::{Failure, Outcome};
use indicatif::{MultiProgress, ProgressBar};
use ocicache::ocicache_core::pull::endpoints;
use ocicache::pull::{
    HttpClient, HttpClientOptions, Platform, PlatformChoice, PullOptions, PullProgress, TagOutcome,
};
use ocicache::{Cache, CredentialSources, Digest, Error};
use std::collections::BTreeMap;

/// Checks the arguments before the cache is opened: bad input changes nothing.
pub fn precheck(args: &PullArgs) -> Result<(), Failure> {
    if let Some(p) = &args.platform {
        Platform::parse(p)?;
    }
    if args.jobs == 0 || args.jobs > 64 {
        return Err(Error::InvalidArgument("--jobs must be between 1 and 64".into()).into());
    }
    for m in &args.mirrors {
        if !(m.starts_with("https://") || m.starts_with("http://")) {
            return Err(Error::InvalidArgument(format!(
                "mirror {m:?}: expected an http:// or https:// URL"
            ))
            .into());
        }
    }
    Ok(())
}

pub fn run(cli: &Cli, cache: &Cache, args: &PullArgs) -> Result<Outcome, Failure> {
    let reference = super::parse_reference(&args.reference)?;
    // Flags first, then config.json, then this machine.
    let settings = ocicache::load_pull_config(cache.dir())?;
    let platform = match (&args.platform, &settings.platform, args.all_platforms) {
        (_, _, true) => PlatformChoice::All,
        (Some(p), _, false) | (None, Some(p), false) => PlatformChoice::One(Platform::parse(p)?),
        (None, None, false) => PlatformChoice::One(Platform::from_rust(
            std::env::consts::OS,
            std::env::consts::ARCH,
        )),
    };
    let config = cache.config()?;
    let mut options = PullOptions {
        platform,
        allow_stale: config.stale_if_error && !args.no_stale,
        offline: args.offline,
        max_concurrent: args.jobs,
        max_manifest_bytes: config.max_manifest_bytes,
        route: settings.route(reference.registry()),
        ..PullOptions::default()
    };
    // Mirrors named on the command line go first.
    let mut mirrors = args.mirrors.clone();
    mirrors.append(&mut options.route.mirrors);
    options.route.mirrors = mirrors;
    options.route.plain_http |= args.plain_http;
    // Credentials: config.json's auth_file first, then where docker, podman and skopeo keep
    // them. Read only for the hosts this pull may talk to.
    let hosts: Vec<String> = endpoints(reference.registry(), &options.route)
        .into_iter()
        .map(|e| e.credentials_key)
        .collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut sources = CredentialSources::from_env();
    if let Some(file) = &settings.auth_file {
        sources = sources.with_auth_file(file.into());
    }
    options.credentials = sources.credentials_for(&hosts)?;
    let client = HttpClient::with_options(&HttpClientOptions {
        ca_file: args.ca_file.clone(),
        ..HttpClientOptions::default()
    })?;
    let mut bars = Bars::new();
    let report = cache.pull_with(&reference, options, &client, &mut bars);
    bars.clear();
    let report = report?;
    if cli.json {
        super::print_json(&report)?;
        return Ok(Outcome::Ok);
    }
    let tag = match &report.tag {
        TagOutcome::Digest => "by digest".to_owned(),
        TagOutcome::Fresh => "fresh".to_owned(),
        TagOutcome::Revalidated => "revalidated".to_owned(),
        TagOutcome::Moved { previous } => format!("moved (was {previous})"),
        TagOutcome::Fetched => "fetched".to_owned(),
        TagOutcome::Stale { reason } => format!("STALE ({reason})"),
    };
    super::println_out(&format!(
        "{} {}\n  tag: {tag}\n  {} manifest(s), {} blob(s); fetched {} bytes, {} from the cache, {} request(s)",
        report.reference,
        report.digest,
        report.manifests.len(),
        report.blobs.len(),
        report.bytes_fetched,
        report.bytes_from_cache,
        report.requests
    ))?;
    Ok(Outcome::Ok)
}

/// One bar per blob download on a terminal; nothing otherwise.
struct Bars {
    multi: Option<MultiProgress>,
    bars: BTreeMap<Digest, ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: super::interactive().then(MultiProgress::new),
            bars: BTreeMap::new(),
        }
    }
    fn clear(&mut self) {
        for (_, b) in std::mem::take(&mut self.bars) {
            b.finish_and_clear();
        }
    }
}

impl PullProgress for Bars {
    fn blob_started(&mut self, digest: &Digest, size: u64, offset: u64) {
        let Some(multi) = &self.multi else { return };
        if !self.bars.contains_key(digest) {
            let hex = digest.hex();
            // Small blobs get no bar (progress::bytes decides, as for `blob put`).
            let Some(bar) = super::progress::bytes(Some(size), &hex[..12.min(hex.len())]) else {
                return;
            };
            self.bars.insert(digest.clone(), multi.add(bar));
        }
        if let Some(bar) = self.bars.get(digest) {
            bar.set_position(offset);
        }
    }
    fn blob_bytes(&mut self, digest: &Digest, n: u64) {
        if let Some(b) = self.bars.get(digest) {
            b.inc(n);
        }
    }
}
