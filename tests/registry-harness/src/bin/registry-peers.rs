//! The harness for tests that are not written in Rust (the npm package's `node --test`
//! files, the Chromium example): real registries, token servers and pushed images, driven
//! over stdin/stdout, one JSON object per line.
//!
//! Each request line is `{"cmd": NAME, ...}`; each answer line is `{"ok": VALUE}` or
//! `{"error": MESSAGE}`, in order. Peers get ids (`r0`, `t0`…) that later commands name.
//! Everything stops when stdin closes (the test process ended, however it ended).
//!
//! | cmd | fields | answer |
//! |---|---|---|
//! | `token-server` | `users`, `readers` (`[[name, password]…]`), `anonymous` (bool, default true), `expires_in` (s) | `{id, realm, service}` |
//! | `registry` | `auth`: absent, `{"basic": [[u, p]…]}` or `{"token": ID}`; `tls` (bool); `cors` (origin); `redirect_blobs` (base URL); `proxy_of` (ID), `proxy_credentials` | `{id, url, host, ca_file, storage_dir}` |
//! | `push` | `registry`, `reference` (`repo:tag`), `kind` (`image`, `multi_arch`, `docker_image`, `docker_list`, `artifact`), `seed`, `layers` (sizes), `artifact_type`, `media_type`, `credentials` | what was pushed: `{digest, media_type, total_size, top_base64, images: [{manifest, config, layers, platform}]}` |
//! | `requests` | `registry` | the access log: `[{method, path, query, status, range, auth_scheme}…]` |
//! | `clear-requests` | `registry` | `null` |
//! | `inject` | `registry`, `method`, `path` (prefix), `times`, `fault`: `{"cut_body": N}`, `{"flip_byte": N}`, `{"respond": {status, headers, body}}`, `{"set_header": [name, value]}` | `null` |
//! | `clear-faults` | `registry` | `null` |
//! | `stop`, `start`, `restart` | `registry` | `null` |
//! | `token-requests` | `server` | `[{user, scopes, service}…]` |
//!
//! ```text
//! $ registry-peers
//! {"cmd":"registry","cors":"*"}
//! {"ok":{"id":"r0","url":"http://127.0.0.1:41234","host":"127.0.0.1:41234","ca_file":null}}
//! ```

use std::collections::HashMap;
use std::io::{BufRead, Write};

use base64::Engine;
use ocicache_registry_harness::layouts::{Blob, Built, ImageSpec, Layout};
use ocicache_registry_harness::{Error, Fault, Registry, Result, TokenServer, push};
use serde_json::{Value, json};

fn main() {
    let mut peers = Peers::default();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) => match peers.handle(&request) {
                Ok(value) => json!({ "ok": value }),
                Err(e) => json!({ "error": e.to_string() }),
            },
            Err(e) => json!({ "error": format!("not a JSON line: {e}") }),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    // Dropping the peers stops them: registries, forwarders, token servers, temp dirs.
}

#[derive(Default)]
struct Peers {
    registries: HashMap<String, Registry>,
    token_servers: HashMap<String, TokenServer>,
    next: usize,
}

fn fail(message: impl Into<String>) -> Error {
    Error(message.into())
}

fn str_field<'a>(request: &'a Value, name: &str) -> Result<&'a str> {
    request[name]
        .as_str()
        .ok_or_else(|| fail(format!("`{name}` must be a string")))
}

fn pairs(value: &Value) -> Result<Vec<(String, String)>> {
    let Some(items) = value.as_array() else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|pair| match (pair[0].as_str(), pair[1].as_str()) {
            (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
            _ => Err(fail("expected [name, password] pairs")),
        })
        .collect()
}

fn blob_json(blob: &Blob) -> Value {
    json!({ "digest": blob.digest, "size": blob.size, "media_type": blob.media_type })
}

fn built_json(built: &Built) -> Value {
    let images: Vec<Value> = built
        .images
        .iter()
        .map(|image| {
            json!({
                "manifest": blob_json(&image.manifest.blob),
                "config": blob_json(&image.config.blob),
                "layers": image.layers.iter().map(blob_json).collect::<Vec<_>>(),
                "platform": image.platform.as_ref().map(|p| p.to_path()),
            })
        })
        .collect();
    json!({
        "digest": built.digest(),
        "media_type": built.media_type(),
        "total_size": built.total_size(),
        "top_base64": base64::engine::general_purpose::STANDARD.encode(&built.top.bytes),
        "artifact_type": built.artifact_type,
        "images": images,
    })
}

impl Peers {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next - 1)
    }

    fn registry(&mut self, request: &Value) -> Result<&mut Registry> {
        let id = str_field(request, "registry")?;
        self.registries
            .get_mut(id)
            .ok_or_else(|| fail(format!("no registry {id}")))
    }

    fn handle(&mut self, request: &Value) -> Result<Value> {
        match str_field(request, "cmd")? {
            "token-server" => {
                let mut builder = TokenServer::builder()
                    .allow_anonymous(request["anonymous"].as_bool().unwrap_or(true));
                for (name, password) in pairs(&request["users"])? {
                    builder = builder.user(&name, &password);
                }
                for (name, password) in pairs(&request["readers"])? {
                    builder = builder.reader(&name, &password);
                }
                if let Some(seconds) = request["expires_in"].as_u64() {
                    builder = builder.expires_in(seconds);
                }
                let server = builder.start()?;
                let id = self.id("t");
                let answer =
                    json!({ "id": id, "realm": server.realm(), "service": server.service() });
                self.token_servers.insert(id, server);
                Ok(answer)
            }
            "registry" => {
                let mut builder = Registry::builder();
                let auth = &request["auth"];
                if !auth["basic"].is_null() {
                    let users = pairs(&auth["basic"])?;
                    let users: Vec<(&str, &str)> = users
                        .iter()
                        .map(|(u, p)| (u.as_str(), p.as_str()))
                        .collect();
                    builder = builder.htpasswd(&users);
                } else if let Some(server) = auth["token"].as_str() {
                    let server = self
                        .token_servers
                        .get(server)
                        .ok_or_else(|| fail(format!("no token server {server}")))?;
                    builder = builder.token_auth(server)?;
                }
                if request["tls"].as_bool() == Some(true) {
                    builder = builder.tls();
                }
                if let Some(base_url) = request["redirect_blobs"].as_str() {
                    builder = builder.redirect_blobs(base_url);
                }
                if let Some(origin) = request["cors"].as_str() {
                    builder = builder.cors(origin);
                }
                if let Some(upstream) = request["proxy_of"].as_str() {
                    let credentials = pairs(&json!([request["proxy_credentials"]]))
                        .ok()
                        .and_then(|p| p.into_iter().next());
                    let upstream = self
                        .registries
                        .get(upstream)
                        .ok_or_else(|| fail(format!("no registry {upstream}")))?;
                    builder = builder.proxy(
                        upstream,
                        credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                    )?;
                }
                let registry = builder.start()?;
                let id = self.id("r");
                let answer = json!({
                    "id": id,
                    "url": registry.url(),
                    "host": registry.host(),
                    "ca_file": registry.ca_file(),
                    "storage_dir": registry.storage_dir(),
                });
                self.registries.insert(id, registry);
                Ok(answer)
            }
            "push" => self.push(request),
            "requests" => {
                let requests: Vec<Value> = self
                    .registry(request)?
                    .requests()
                    .into_iter()
                    .map(|r| {
                        json!({
                            "method": r.method, "path": r.path, "query": r.query,
                            "status": r.status, "range": r.range, "auth_scheme": r.auth_scheme,
                        })
                    })
                    .collect();
                Ok(Value::Array(requests))
            }
            "clear-requests" => {
                self.registry(request)?.clear_requests();
                Ok(Value::Null)
            }
            "inject" => {
                let fault = fault(&request["fault"])?;
                let method = str_field(request, "method")?.to_string();
                let path = str_field(request, "path")?.to_string();
                let times = request["times"].as_u64().unwrap_or(1) as usize;
                self.registry(request)?.inject(&method, &path, fault, times);
                Ok(Value::Null)
            }
            "clear-faults" => {
                self.registry(request)?.clear_faults();
                Ok(Value::Null)
            }
            "stop" => {
                self.registry(request)?.stop();
                Ok(Value::Null)
            }
            "start" => {
                self.registry(request)?.start()?;
                Ok(Value::Null)
            }
            "restart" => {
                self.registry(request)?.restart()?;
                Ok(Value::Null)
            }
            "token-requests" => {
                let id = str_field(request, "server")?;
                let server = self
                    .token_servers
                    .get(id)
                    .ok_or_else(|| fail(format!("no token server {id}")))?;
                let requests: Vec<Value> = server
                    .requests()
                    .into_iter()
                    .map(|r| json!({ "user": r.user, "scopes": r.scopes, "service": r.service, "status": r.status }))
                    .collect();
                Ok(Value::Array(requests))
            }
            other => Err(fail(format!("unknown cmd {other:?}"))),
        }
    }

    fn push(&mut self, request: &Value) -> Result<Value> {
        let reference = str_field(request, "reference")?.to_string();
        let seed = request["seed"].as_u64().unwrap_or(1);
        let layers: Vec<u64> = request["layers"]
            .as_array()
            .map(|sizes| sizes.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_else(|| vec![1024]);
        let spec = ImageSpec::new(seed, &layers);
        let mut layout = Layout::new()?;
        let built = match request["kind"].as_str().unwrap_or("image") {
            "image" => layout.image("ref", &spec)?,
            "multi_arch" => layout.multi_arch("ref", &spec)?,
            "docker_image" => layout.docker_image("ref", &spec)?,
            "docker_list" => layout.docker_list("ref", &spec)?,
            "artifact" => layout.artifact(
                "ref",
                request["artifact_type"]
                    .as_str()
                    .unwrap_or("application/vnd.example.thing"),
                request["media_type"]
                    .as_str()
                    .unwrap_or("application/vnd.example.thing.layer"),
                layers.first().copied().unwrap_or(1024),
                seed,
            )?,
            other => return Err(fail(format!("unknown kind {other:?}"))),
        };
        let credentials = pairs(&json!([request["credentials"]]))
            .ok()
            .and_then(|p| p.into_iter().next());
        let registry = self.registry(request)?;
        push(
            layout.dir(),
            "ref",
            registry,
            &reference,
            credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        )?;
        Ok(built_json(&built))
    }
}

fn fault(value: &Value) -> Result<Fault> {
    if let Some(after) = value["cut_body"].as_u64() {
        return Ok(Fault::CutBody { after });
    }
    if let Some(offset) = value["flip_byte"].as_u64() {
        return Ok(Fault::FlipByte { offset });
    }
    if let Some([name, value]) = value["set_header"].as_array().map(Vec::as_slice) {
        return Ok(Fault::SetHeader {
            name: name.as_str().unwrap_or_default().into(),
            value: value.as_str().unwrap_or_default().into(),
        });
    }
    let respond = &value["respond"];
    if let Some(status) = respond["status"].as_u64() {
        let headers = respond["headers"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|h| Some((h[0].as_str()?.into(), h[1].as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Fault::Respond {
            status: status as u16,
            headers,
            body: respond["body"].as_str().unwrap_or_default().into(),
        });
    }
    Err(fail(format!("unknown fault {value}")))
}
