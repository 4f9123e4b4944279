//! The recording forwarder: a small HTTP/1.1 relay on the registry's public port, in front of
//! the registry process on a private one.
//!
//! distribution's own access log (Apache combined format on stdout) lacks the `Range` header
//! and is written after the response went out, so counts read from it right after a request
//! would race. The forwarder records each request before it passes the response head on,
//! sees `Range`, terminates TLS itself (so a TLS registry is recorded too), and can inject
//! [`Fault`]s. It keeps the client's connections alive as the registry would: one upstream
//! connection per client connection, requests in order.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::access_log::{AccessLog, Request};
use crate::fault::{Fault, Faults};

/// What every connection of one forwarder shares.
pub(crate) struct Shared {
    pub(crate) upstream: SocketAddr,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) log: Arc<AccessLog>,
    pub(crate) faults: Arc<Faults>,
}

/// A running forwarder; [`Forwarder::stop`] (or drop) closes the port and every connection.
pub(crate) struct Forwarder {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    connections: Arc<Connections>,
}

/// The sockets of open connections (to shut them down on stop) and their threads.
#[derive(Default)]
struct Connections {
    next_id: AtomicU64,
    sockets: Mutex<HashMap<u64, Vec<TcpStream>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Connections {
    /// Registers a socket of connection `id`, unless the forwarder is stopping.
    fn register(&self, id: u64, socket: &TcpStream, stopping: &AtomicBool) -> io::Result<()> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if stopping.load(Ordering::SeqCst) {
            return Err(io::Error::other("forwarder stopping"));
        }
        sockets.entry(id).or_default().push(socket.try_clone()?);
        Ok(())
    }

    /// Shuts down and forgets the sockets of connection `id`.
    fn close(&self, id: u64) {
        let sockets = self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        for socket in sockets.into_iter().flatten() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Forwarder {
    /// Serves `listener`, relaying to `shared.upstream`.
    pub(crate) fn start(listener: TcpListener, shared: Arc<Shared>) -> io::Result<Forwarder> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Connections::default());
        let acceptor = {
            let stopping = stopping.clone();
            let connections = connections.clone();
            std::thread::Builder::new()
                .name(format!("forwarder-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared, stopping, connections))?
        };
        Ok(Forwarder {
            addr,
            stopping,
            acceptor: Some(acceptor),
            connections,
        })
    }

    /// Closes the port, drops every open connection and waits for their threads.
    pub(crate) fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; it sees the flag and returns.
        let _ = TcpStream::connect(self.addr);
        let _ = acceptor.join();
        let ids: Vec<u64> = {
            let sockets = self
                .connections
                .sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            sockets.keys().copied().collect()
        };
        for id in ids {
            self.connections.close(id);
        }
        let workers = std::mem::take(
            &mut *self
                .connections
                .workers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stopping: Arc<AtomicBool>,
    connections: Arc<Connections>,
) {
    for client in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else {
            // accept errors (a reset before accept) concern that client only.
            continue;
        };
        let id = connections.next_id.fetch_add(1, Ordering::Relaxed);
        if connections.register(id, &client, &stopping).is_err() {
            return;
        }
        let shared = shared.clone();
        let stopping = stopping.clone();
        let conns = connections.clone();
        let worker = std::thread::spawn(move || {
            let _ = serve(id, client, &shared, &stopping, &conns);
            conns.close(id);
        });
        let mut workers = connections
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        workers.retain(|w| !w.is_finished());
        workers.push(worker);
    }
}

fn serve(
    id: u64,
    client: TcpStream,
    shared: &Shared,
    stopping: &AtomicBool,
    connections: &Connections,
) -> io::Result<()> {
    let upstream = TcpStream::connect(shared.upstream)?;
    connections.register(id, &upstream, stopping)?;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    match &shared.tls {
        None => relay(client, upstream, shared, "http"),
        Some(config) => {
            let connection =
                rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            relay(
                rustls::StreamOwned::new(connection, client),
                upstream,
                shared,
                "https",
            )
        }
    }
}

/// A client-side stream; TLS says goodbye properly on a normal close.
trait ClientStream: Read + Write {
    fn close_notify(&mut self) {}
}

impl ClientStream for TcpStream {}

impl ClientStream for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

const MAX_HEAD: usize = 64 * 1024;

/// A parsed message head: start line and headers, in order.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn framing(&self) -> io::Result<Framing> {
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(length) => length
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| bad("Content-Length")),
            None => Ok(Framing::None),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP {what}"))
}

/// Reads a message head; `None` at a clean end of stream before its first byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        total += line.len();
        if total > MAX_HEAD {
            return Err(bad("head (too long)"));
        }
        let text = String::from_utf8(line).map_err(|_| bad("head (not UTF-8)"))?;
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between messages
            }
            break;
        }
        lines.push(text);
    }
    let start = lines.remove(0);
    let headers = lines
        .into_iter()
        .map(|line| {
            let (name, value) = line.split_once(':').ok_or_else(|| bad("header"))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect::<io::Result<_>>()?;
    Ok(Some(Head { start, headers }))
}

fn read_line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader.take(MAX_HEAD as u64).read_until(b'\n', &mut line)?;
    Ok(line)
}

/// How a message body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilEof,
}

/// What the faults do to one response body.
#[derive(Default)]
struct Tamper {
    cut_after: Option<u64>,
    flips: Vec<u64>,
}

fn relay<C: ClientStream>(
    client: C,
    upstream: TcpStream,
    shared: &Shared,
    scheme: &str,
) -> io::Result<()> {
    let mut client = BufReader::with_capacity(64 * 1024, client);
    let mut upstream = BufReader::with_capacity(64 * 1024, upstream);
    loop {
        let Some(mut request) = read_head(&mut client)? else {
            client.get_mut().close_notify();
            return Ok(());
        };
        let mut parts = request.start.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().ok_or_else(|| bad("request line"))?.to_string();
        let request_framing = request.framing()?;
        if request.has_token("expect", "100-continue") {
            // Answered here: the relay sends the body only after the head, in order.
            request.remove("expect");
            client
                .get_mut()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            client.get_mut().flush()?;
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_string(), Some(query.to_string())),
            None => (target.clone(), None),
        };
        let faults = shared.faults.take(&method, &path);
        let mut entry = Request {
            method: method.clone(),
            path: path.clone(),
            query,
            status: 0,
            range: request.header("range").map(str::to_string),
            auth_scheme: request
                .header("authorization")
                .and_then(|a| a.split_whitespace().next())
                .map(str::to_string),
        };
        if let Some(Fault::Respond {
            status,
            headers,
            body,
        }) = faults.iter().find(|f| matches!(f, Fault::Respond { .. }))
        {
            copy_body(
                &mut client,
                &mut io::sink(),
                request_framing,
                &Tamper::default(),
            )?;
            entry.status = *status;
            shared.log.push(entry);
            let head_only = method.eq_ignore_ascii_case("HEAD");
            write_response(client.get_mut(), *status, headers, body, head_only)?;
            if request.has_token("connection", "close") {
                client.get_mut().close_notify();
                return Ok(());
            }
            continue;
        }
        // distribution builds absolute upload URLs from this and the client's Host.
        request.remove("x-forwarded-proto");
        request
            .headers
            .push(("X-Forwarded-Proto".into(), scheme.into()));
        upstream.get_mut().write_all(&request.to_bytes())?;
        copy_body(
            &mut client,
            upstream.get_mut(),
            request_framing,
            &Tamper::default(),
        )?;
        upstream.get_mut().flush()?;

        let mut response = loop {
            let head = read_head(&mut upstream)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let status = status_of(&head)?;
            if (100..200).contains(&status) && status != 101 {
                client.get_mut().write_all(&head.to_bytes())?;
                continue;
            }
            break head;
        };
        let status = status_of(&response)?;
        entry.status = status;
        shared.log.push(entry);

        let mut tamper = Tamper::default();
        for fault in faults {
            match fault {
                Fault::CutBody { after } => tamper.cut_after = Some(after),
                Fault::FlipByte { offset } => tamper.flips.push(offset),
                Fault::SetHeader { name, value } => {
                    response.remove(&name);
                    response.headers.push((name, value));
                }
                Fault::Respond { .. } => unreachable!("answered above"),
            }
        }
        let framing = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
            Framing::None
        } else {
            match response.framing()? {
                Framing::None => Framing::UntilEof,
                framing => framing,
            }
        };
        client.get_mut().write_all(&response.to_bytes())?;
        let cut = copy_body(&mut upstream, client.get_mut(), framing, &tamper)?;
        client.get_mut().flush()?;
        if cut {
            // Dropped without close_notify: the client sees a truncated response.
            return Ok(());
        }
        if framing == Framing::UntilEof
            || request.has_token("connection", "close")
            || response.has_token("connection", "close")
        {
            client.get_mut().close_notify();
            return Ok(());
        }
    }
}

/// Writes a whole response made here ([`Fault::Respond`]).
fn write_response(
    to: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Injected\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    to.write_all(head.as_bytes())?;
    if !head_only {
        to.write_all(body.as_bytes())?;
    }
    to.flush()
}

fn status_of(head: &Head) -> io::Result<u16> {
    head.start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))
}

/// Copies one body; returns whether a [`Fault::CutBody`] cut it.
fn copy_body(
    from: &mut impl BufRead,
    to: &mut impl Write,
    framing: Framing,
    tamper: &Tamper,
) -> io::Result<bool> {
    let mut offset = 0;
    match framing {
        Framing::None => Ok(false),
        Framing::Length(n) => copy_data(from, to, Some(n), &mut offset, tamper),
        Framing::UntilEof => copy_data(from, to, None, &mut offset, tamper),
        Framing::Chunked => loop {
            let line = read_line(from)?;
            if line.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            to.write_all(&line)?;
            let text = std::str::from_utf8(&line).map_err(|_| bad("chunk size"))?;
            let size = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let line = read_line(from)?;
                    if line.is_empty() {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    to.write_all(&line)?;
                    if line == b"\r\n" || line == b"\n" {
                        return Ok(false);
                    }
                }
            }
            if copy_data(from, to, Some(size), &mut offset, tamper)? {
                return Ok(true);
            }
            let crlf = read_line(from)?;
            to.write_all(&crlf)?;
        },
    }
}

/// Copies `length` body bytes (or up to the end of the stream), applying `tamper` at body
/// offsets starting from `*offset`; returns whether it cut.
fn copy_data(
    from: &mut impl BufRead,
    to: &mut impl Write,
    length: Option<u64>,
    offset: &mut u64,
    tamper: &Tamper,
) -> io::Result<bool> {
    let mut left = length.unwrap_or(u64::MAX);
    while left > 0 {
        if tamper.cut_after.is_some_and(|cut| *offset >= cut) {
            to.flush()?;
            return Ok(true);
        }
        let buf = from.fill_buf()?;
        if buf.is_empty() {
            if length.is_none() {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some(cut) = tamper.cut_after {
            take = take.min(usize::try_from(cut - *offset).unwrap_or(usize::MAX));
        }
        let end = *offset + take as u64;
        if tamper.flips.iter().any(|f| (*offset..end).contains(f)) {
            let mut chunk = buf[..take].to_vec();
            for f in tamper.flips.iter().filter(|f| (*offset..end).contains(f)) {
                chunk[(f - *offset) as usize] ^= 0x01;
            }
            to.write_all(&chunk)?;
        } else {
            to.write_all(&buf[..take])?;
        }
        from.consume(take);
        *offset = end;
        left -= take as u64;
    }
    Ok(false)
}
