//! Warm pulls in one process, as a program that embeds the `ocicache` crate makes them: the
//! cache opened once, then `Cache::pull` of a reference whose tag is fresh and whose graph is
//! cached (no request). `host-native/benches/pull.sh` runs it beside `skopeo copy` and
//! `ocicache pull`, whose figures include a process start.
//!
//! ```text
//! cargo run --release --example warm_pull -- DIR REFERENCE RUNS [native|component]
//! ```
//! Prints the best and the median time of one pull, in seconds; fails if the first pull made a
//! request after the warm-up or any timed pull did.

use std::time::{Duration, Instant};

use ocicache::pull::{HttpClient, NoProgress, PullOptions, TagOutcome};
use ocicache::{Cache, EngineKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, reference, runs, rest @ ..] = args.as_slice() else {
        return Err("usage: warm_pull DIR REFERENCE RUNS [native|component]".into());
    };
    let engine = match rest.first().map(String::as_str) {
        None | Some("native") => EngineKind::Native,
        Some("component") => EngineKind::Component,
        Some(other) => return Err(format!("unknown engine {other}").into()),
    };
    let runs: usize = runs.parse()?;
    let reference = reference.parse()?;
    let cache = Cache::builder(dir).engine(engine).open()?;
    let client = HttpClient::new()?;
    let pull = || cache.pull_with(&reference, PullOptions::default(), &client, &mut NoProgress);
    // The warm-up: the first pull of this process (it may fetch, if the cache is cold).
    pull()?;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        let report = pull()?;
        times.push(t0.elapsed());
        if report.requests != 0 || report.tag != TagOutcome::Fresh {
            return Err(format!(
                "not a warm pull: {:?}, {} requests",
                report.tag, report.requests
            )
            .into());
        }
    }
    times.sort();
    let best = times.first().ok_or("RUNS must be at least 1")?;
    let median = times[times.len() / 2];
    println!("{:.6} {:.6}", best.as_secs_f64(), median.as_secs_f64());
    Ok(())
}
