//! The core's sans-I/O [`Pull`] for JavaScript: [`WasmPull`], driven by the package's
//! `src/pull.js` over `fetch` (and by the conformance player over a script). Each call lends
//! the pull the [`WasmCache`] it stores into, the way the Rust hosts lend `&mut Cache`.
//!
//! Everything crosses as JSON: the options in (the keys of [`options`]), the actions out
//! ([`WasmPull::poll`]), so the JS side sees the report with the Rust field names.

use crate::{JsResult, WasmCache, to_js};
use ocicache_core::pull::{
    Action, Credentials, HttpRequest, Platform, PlatformChoice, Pull, PullOptions, Purpose,
    RequestId, ResponseHead,
};
use ocicache_core::{BlobWriter, Error};
use serde_json::{Map, Value, json};
use wasm_bindgen::prelude::*;

/// One pull of one reference into a [`WasmCache`]. Internal to the npm package: use
/// `cache.pull`.
#[wasm_bindgen]
pub struct WasmPull {
    /// `None` once cancelled.
    pull: Option<Pull<BlobWriter>>,
}

fn over() -> JsValue {
    to_js(Error::InvalidArgument("the pull was cancelled".into()))
}

#[wasm_bindgen]
impl WasmPull {
    /// A pull of `reference` with `options_json` (an object of the keys of [`options`]).
    #[wasm_bindgen(constructor)]
    pub fn new(reference: &str, options_json: &str) -> JsResult<WasmPull> {
        let reference = crate::reference(reference)?;
        let options = options(options_json).map_err(to_js)?;
        Ok(WasmPull {
            pull: Some(Pull::new(reference, options)),
        })
    }

    fn pull(&mut self) -> JsResult<&mut Pull<BlobWriter>> {
        self.pull.as_mut().ok_or_else(over)
    }

    /// The next action, as JSON: `{"send": {id, method, url, headers: [[n, v]…], purpose}}`,
    /// `{"sleep": until, "delay_ms": ms}`, `{"wait": true}` or `{"done": PullReport}`. Throws
    /// the pull's error.
    pub fn poll(&mut self, cache: &mut WasmCache) -> JsResult<String> {
        let store = cache.cache()?;
        let pull = self.pull.as_mut().ok_or_else(over)?;
        let action = match pull.poll(store).map_err(to_js)? {
            Action::Send(request) => json!({ "send": request_json(&request) }),
            Action::Sleep { until, delay_ms } => json!({ "sleep": until, "delay_ms": delay_ms }),
            Action::Wait => json!({ "wait": true }),
            Action::Done(report) => json!({ "done": report }),
        };
        Ok(action.to_string())
    }

    /// The status and headers (`[[name, value]…]` as JSON) of request `id`'s response;
    /// whether to read its body.
    #[wasm_bindgen(js_name = onHead)]
    pub fn on_head(
        &mut self,
        cache: &mut WasmCache,
        id: f64,
        status: u16,
        headers_json: &str,
    ) -> JsResult<bool> {
        let headers: Vec<(String, String)> = serde_json::from_str(headers_json).map_err(|e| {
            to_js(Error::InvalidArgument(format!(
                "headers must be [name, value] pairs: {e}"
            )))
        })?;
        let store = cache.cache()?;
        let head = ResponseHead { status, headers };
        Ok(self.pull()?.on_head(store, request_id(id), head))
    }

    /// A chunk of request `id`'s body; whether to go on reading.
    #[wasm_bindgen(js_name = onBody)]
    pub fn on_body(&mut self, cache: &mut WasmCache, id: f64, chunk: &[u8]) -> JsResult<bool> {
        let store = cache.cache()?;
        Ok(self.pull()?.on_body(store, request_id(id), chunk))
    }

    /// Request `id`'s body is complete.
    #[wasm_bindgen(js_name = onEnd)]
    pub fn on_end(&mut self, cache: &mut WasmCache, id: f64) -> JsResult<()> {
        let store = cache.cache()?;
        self.pull()?.on_end(store, request_id(id));
        Ok(())
    }

    /// Request `id` failed in transport (no connection, a reset mid-body, …).
    #[wasm_bindgen(js_name = onError)]
    pub fn on_error(&mut self, cache: &mut WasmCache, id: f64, message: &str) -> JsResult<()> {
        let store = cache.cache()?;
        self.pull()?.on_error(store, request_id(id), message);
        Ok(())
    }

    /// The host slept as long as the last `sleep` asked, by its own clock.
    pub fn slept(&mut self) -> JsResult<()> {
        self.pull()?.slept();
        Ok(())
    }

    /// Gives up: aborts open blob writers and drops the pull's pins (what is stored stays).
    /// A no-op once cancelled, or when the cache is closed (its writers went with it).
    pub fn cancel(&mut self, cache: &mut WasmCache) {
        if let (Some(pull), Ok(store)) = (self.pull.take(), cache.cache()) {
            pull.cancel(store);
        }
    }
}

fn request_id(id: f64) -> RequestId {
    RequestId(id as u64)
}

fn request_json(r: &HttpRequest) -> Value {
    let purpose = match &r.purpose {
        Purpose::Manifest => json!({ "kind": "manifest" }),
        Purpose::Token => json!({ "kind": "token" }),
        Purpose::Blob {
            digest,
            size,
            offset,
        } => json!({ "kind": "blob", "digest": digest, "size": size, "offset": offset }),
    };
    json!({
        "id": r.id.0,
        "method": r.method.as_str(),
        "url": r.url,
        "headers": r.headers,
        "purpose": purpose,
    })
}

/// Pull options from JSON, each key optional (`invalid_argument` for anything else):
/// `platform` (`os/arch[/variant]` or `all`; default `linux/amd64`), `allow_stale`, `offline`,
/// `plain_http`, `mirrors` (base URLs), `credentials` (`{"host[:port]": {"username",
/// "password"} | {"identity_token"}}`), `max_concurrent`, `max_attempts`, `retry_base_ms`,
/// `max_manifest_bytes`.
pub fn options(json: &str) -> Result<PullOptions, Error> {
    let bad = |m: String| Error::InvalidArgument(format!("pull options: {m}"));
    let value: Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(bad("not an object".into()));
    };
    let mut o = PullOptions::default();
    let boolean = |k: &str, v: &Value| v.as_bool().ok_or_else(|| bad(format!("{k}: a boolean")));
    let number = |k: &str, v: &Value| {
        v.as_u64()
            .ok_or_else(|| bad(format!("{k}: a non-negative integer")))
    };
    for (k, v) in &map {
        match k.as_str() {
            "platform" => {
                let s = v.as_str().ok_or_else(|| bad("platform: a string".into()))?;
                o.platform = if s == "all" {
                    PlatformChoice::All
                } else {
                    PlatformChoice::One(Platform::parse(s)?)
                };
            }
            "allow_stale" => o.allow_stale = boolean(k, v)?,
            "offline" => o.offline = boolean(k, v)?,
            "plain_http" => o.route.plain_http = boolean(k, v)?,
            "mirrors" => {
                o.route.mirrors = v
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|m| m.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| bad("mirrors: an array of URLs".into()))?;
            }
            "credentials" => {
                let hosts = v
                    .as_object()
                    .ok_or_else(|| bad("credentials: an object by host".into()))?;
                for (host, c) in hosts {
                    o.credentials.insert(host.clone(), credentials(host, c)?);
                }
            }
            "max_concurrent" => {
                o.max_concurrent = usize::try_from(number(k, v)?.max(1)).unwrap_or(usize::MAX);
            }
            "max_attempts" => {
                o.max_attempts = u32::try_from(number(k, v)?.max(1)).unwrap_or(u32::MAX);
            }
            "retry_base_ms" => o.retry_base_ms = number(k, v)?,
            "max_manifest_bytes" => o.max_manifest_bytes = number(k, v)?,
            other => return Err(bad(format!("unknown option {other:?}"))),
        }
    }
    Ok(o)
}

fn credentials(host: &str, c: &Value) -> Result<Credentials, Error> {
    let field =
        |m: &Map<String, Value>, n: &str| m.get(n).and_then(Value::as_str).map(String::from);
    let m = c.as_object();
    if let Some(token) = m.and_then(|m| field(m, "identity_token")) {
        return Ok(Credentials::IdentityToken(token));
    }
    match m.map(|m| (field(m, "username"), field(m, "password"))) {
        Some((Some(username), Some(password))) => Ok(Credentials::Basic { username, password }),
        _ => Err(Error::InvalidArgument(format!(
            "pull options: credentials.{host}: {{\"username\", \"password\"}} or {{\"identity_token\"}}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_the_runner_keys_and_refuse_others() {
        let o = options(
            r#"{"platform": "all", "allow_stale": false, "max_concurrent": 1, "retry_base_ms": 100,
                "mirrors": ["https://m.example"], "credentials": {"r.example": {"username": "u", "password": "p"},
                "t.example": {"identity_token": "tok"}}}"#,
        )
        .unwrap();
        assert_eq!(o.platform, PlatformChoice::All);
        assert!(!o.allow_stale);
        assert_eq!((o.max_concurrent, o.retry_base_ms), (1, 100));
        assert_eq!(o.route.mirrors, ["https://m.example"]);
        assert_eq!(o.credentials.len(), 2);
        for bad in [
            r#"{"concurrency": 2}"#,
            r#"{"platform": "linux"}"#,
            r#"{"credentials": {"r": {"username": "u"}}}"#,
            "[]",
        ] {
            assert!(options(bad).is_err(), "{bad}");
        }
    }
}
