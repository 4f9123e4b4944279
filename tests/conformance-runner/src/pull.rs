//! The `pull` step: the core's `Pull` driven over the subject's cache, its HTTP requests
//! answered by the scenario's script (`args.http`), one exchange per request, in order.
//!
//! ```json
//! {"op": "pull", "args": {
//!   "reference": "127.0.0.1:5000/app:1.0",
//!   "options": {"platform": "linux/amd64", "allow_stale": true, "offline": false,
//!               "mirrors": [], "plain_http": false, "credentials": {"host": {"username": "u", "password": "p"}}},
//!   "http": [
//!     {"request": {"method": "GET", "url": "https://…/v2/app/manifests/1.0", "headers": {"Range": null}},
//!      "response": {"status": 200, "headers": [["Content-Type", "…"]], "body": "…", "cut_after": 10}},
//!     {"request": {…}, "error": "connection refused"}
//!   ]}}
//! ```
//!
//! A request must match its exchange's method and URL, and each header the exchange names
//! (`null`: must be absent). `cut_after` delivers that many body bytes, then a transport error.
//! Every exchange must be used. The step's value is the pull's report.

use super::{Fail, StepResult, Subject, harness, to_json};
use ocicache_core::Reference;
use ocicache_core::pull::{
    Action, Credentials, Platform, PlatformChoice, Pull, PullOptions, ResponseHead,
};
use serde_json::{Map, Value};

/// Bounds a scenario's pull (a script cannot make the runner loop).
const MAX_STEPS: usize = 10_000;

pub(crate) fn run<S: Subject>(subject: &mut S, args: Option<&Map<String, Value>>) -> StepResult {
    let args = args.ok_or_else(|| harness("pull needs args"))?;
    let reference: Reference = args
        .get("reference")
        .and_then(Value::as_str)
        .ok_or_else(|| harness("pull needs a reference"))?
        .parse()?;
    let options = options(args.get("options"))?;
    let script = args
        .get("http")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut next = 0usize;
    let mut pull: Pull<S::PullWriter> = Pull::new(reference, options);
    for _ in 0..MAX_STEPS {
        let action = pull.poll(&mut subject.pull_store());
        match action {
            Err(e) => {
                if next != script.len() {
                    return Err(harness(format!(
                        "the pull failed ({e}) with {} exchange(s) of the script unused",
                        script.len() - next
                    )));
                }
                return Err(Fail::from(e));
            }
            Ok(Action::Done(report)) => {
                if next != script.len() {
                    return Err(harness(format!(
                        "the pull ended with {} exchange(s) of the script unused",
                        script.len() - next
                    )));
                }
                return to_json(&report);
            }
            Ok(Action::Sleep { until, .. }) => subject.set_clock(until),
            Ok(Action::Wait) => return Err(harness("the pull waits with nothing in flight")),
            Ok(Action::Send(request)) => {
                let exchange = script.get(next).ok_or_else(|| {
                    harness(format!(
                        "request {} {} beyond the script's {} exchange(s)",
                        request.method.as_str(),
                        request.url,
                        script.len()
                    ))
                })?;
                next += 1;
                check_request(next, exchange, &request)?;
                let id = request.id;
                if let Some(message) = exchange.get("error").and_then(Value::as_str) {
                    pull.on_error(&mut subject.pull_store(), id, message);
                    continue;
                }
                let response = exchange
                    .get("response")
                    .ok_or_else(|| harness(format!("exchange {next}: no response or error")))?;
                let (head, body, cut) = response_of(next, response)?;
                if !pull.on_head(&mut subject.pull_store(), id, head) {
                    continue;
                }
                let body = &body[..cut.unwrap_or(body.len()).min(body.len())];
                // Chunks of 1000 bytes, as a network delivers them.
                let mut more = true;
                for chunk in body.chunks(1000) {
                    if !pull.on_body(&mut subject.pull_store(), id, chunk) {
                        more = false;
                        break;
                    }
                }
                if more && cut.is_some() {
                    pull.on_error(&mut subject.pull_store(), id, "connection reset");
                } else {
                    pull.on_end(&mut subject.pull_store(), id);
                }
            }
        }
    }
    Err(harness("the pull did not end"))
}

fn options(v: Option<&Value>) -> Result<PullOptions, Fail> {
    let mut o = PullOptions {
        // Scenarios run one request at a time, so that the script's order is the order.
        max_concurrent: 1,
        retry_base_ms: 100,
        ..PullOptions::default()
    };
    let Some(v) = v else { return Ok(o) };
    let m = v
        .as_object()
        .ok_or_else(|| harness("pull options must be an object"))?;
    for (k, v) in m {
        match k.as_str() {
            "platform" => {
                let s = v.as_str().ok_or_else(|| harness("platform: a string"))?;
                o.platform = if s == "all" {
                    PlatformChoice::All
                } else {
                    PlatformChoice::One(Platform::parse(s)?)
                };
            }
            "allow_stale" => o.allow_stale = v.as_bool().ok_or_else(|| harness("a bool"))?,
            "offline" => o.offline = v.as_bool().ok_or_else(|| harness("a bool"))?,
            "plain_http" => o.route.plain_http = v.as_bool().ok_or_else(|| harness("a bool"))?,
            "mirrors" => {
                o.route.mirrors = v
                    .as_array()
                    .ok_or_else(|| harness("mirrors: an array"))?
                    .iter()
                    .map(|m| m.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| harness("mirrors: strings"))?;
            }
            "max_manifest_bytes" => {
                o.max_manifest_bytes = v.as_u64().ok_or_else(|| harness("a number"))?;
            }
            "credentials" => {
                for (host, c) in v
                    .as_object()
                    .ok_or_else(|| harness("credentials: object"))?
                {
                    let field = |n: &str| {
                        c.get(n)
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .ok_or_else(|| harness(format!("credentials.{host}.{n}")))
                    };
                    o.credentials.insert(
                        host.clone(),
                        Credentials::Basic {
                            username: field("username")?,
                            password: field("password")?,
                        },
                    );
                }
            }
            other => return Err(harness(format!("unknown pull option {other:?}"))),
        }
    }
    Ok(o)
}

fn check_request(
    n: usize,
    exchange: &Value,
    request: &ocicache_core::pull::HttpRequest,
) -> Result<(), Fail> {
    let want = exchange
        .get("request")
        .ok_or_else(|| harness(format!("exchange {n}: no request")))?;
    let shown = format!("{} {}", request.method.as_str(), request.url);
    if want.get("method").and_then(Value::as_str) != Some(request.method.as_str())
        || want.get("url").and_then(Value::as_str) != Some(request.url.as_str())
    {
        return Err(harness(format!(
            "exchange {n}: expected {} {}, the pull sent {shown}",
            want.get("method").and_then(Value::as_str).unwrap_or("?"),
            want.get("url").and_then(Value::as_str).unwrap_or("?"),
        )));
    }
    if let Some(headers) = want.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let got = request.header(name);
            if got != value.as_str() {
                return Err(harness(format!(
                    "exchange {n} ({shown}): header {name} is {got:?}, expected {value}"
                )));
            }
        }
    }
    Ok(())
}

fn response_of(n: usize, r: &Value) -> Result<(ResponseHead, Vec<u8>, Option<usize>), Fail> {
    let status = r
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| harness(format!("exchange {n}: response.status")))?;
    let mut head = ResponseHead {
        status,
        headers: Vec::new(),
    };
    for h in r
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pair = h.as_array().filter(|p| p.len() == 2);
        let (Some(name), Some(value)) = (
            pair.and_then(|p| p[0].as_str()),
            pair.and_then(|p| p[1].as_str()),
        ) else {
            return Err(harness(format!(
                "exchange {n}: headers are [name, value] pairs"
            )));
        };
        head.headers.push((name.to_owned(), value.to_owned()));
    }
    let body = r
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or("")
        .as_bytes()
        .to_vec();
    let cut = r
        .get("cut_after")
        .and_then(Value::as_u64)
        .map(|c| c as usize);
    Ok((head, body, cut))
}
