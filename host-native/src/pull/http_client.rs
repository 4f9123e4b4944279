//! The native HTTP client a pull's requests go through: `ureq` (blocking, rustls) with the
//! platform's trust roots, or a CA file given by the user.

use ocicache_core::pull::{HttpRequest, Method, ResponseHead};
use ocicache_core::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Performs a pull's requests. Redirects are returned, not followed (the pull follows them, so
/// that credentials stay with their origin), error statuses are responses, and bodies are
/// never decompressed (every byte counts toward a digest).
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
}

/// How the client connects.
#[derive(Debug, Clone, Default)]
pub struct HttpClientOptions {
    /// A PEM file of CA certificates to trust instead of the platform's roots (`--ca-file`).
    pub ca_file: Option<std::path::PathBuf>,
    /// Connect timeout (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// Time to wait for a response's head (default 60 s).
    pub response_timeout: Option<Duration>,
}

impl HttpClient {
    /// A client with the platform's trust roots.
    pub fn new() -> Result<HttpClient> {
        HttpClient::with_options(&HttpClientOptions::default())
    }

    /// A client with these options.
    pub fn with_options(options: &HttpClientOptions) -> Result<HttpClient> {
        let roots = match &options.ca_file {
            Some(path) => ca_roots(path)?,
            None => ureq::tls::RootCerts::PlatformVerifier,
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .tls_config(tls)
            .user_agent(concat!("ocicache/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(
                options.connect_timeout.unwrap_or(Duration::from_secs(30)),
            ))
            .timeout_recv_response(Some(
                options.response_timeout.unwrap_or(Duration::from_secs(60)),
            ))
            .build();
        Ok(HttpClient {
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// Sends `request`; returns the head and a reader of the body (which errs if the connection
    /// ends before `Content-Length` bytes). A transport failure is an `Err` with its message.
    pub fn send(
        &self,
        request: &HttpRequest,
    ) -> std::result::Result<(ResponseHead, Box<dyn Read + Send>), String> {
        let mut builder = ureq::http::Request::builder().uri(request.url.as_str());
        builder = builder.method(match request.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
        });
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http_request = builder.body(()).map_err(|e| format!("bad request: {e}"))?;
        let response = self
            .agent
            .run(http_request)
            .map_err(|e| transport_message(&e))?;
        let (parts, body) = response.into_parts();
        let head = ResponseHead {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        };
        Ok((head, Box::new(body.into_reader())))
    }
}

fn transport_message(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

fn ca_roots(path: &Path) -> Result<ureq::tls::RootCerts> {
    let bad = |m: String| Error::InvalidConfig(format!("CA file {}: {m}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() || meta.len() > 16 * 1024 * 1024 {
        return Err(bad("not a regular file of at most 16 MiB".into()));
    }
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}
