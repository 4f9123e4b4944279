//! Drives a core [`Pull`] with real HTTP: requests run on worker threads (blobs several at a
//! time), and every event comes back to the one thread that owns the pull and talks to the
//! cache. Body chunks cross a bounded channel, so memory stays bounded whatever the sizes.

use super::blob_lock::BlobLock;
use super::http_client::HttpClient;
use crate::{BlobWriter, Cache};
use ocicache_core::pull::{Action, Pull, PullReport, Purpose, RequestId, ResponseHead};
use ocicache_core::{Digest, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// Body chunks read at a time: large enough that the per-write lock is noise.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the workers and the pull, all workers together.
const CHANNEL_CHUNKS: usize = 16;

/// What a pull reports as it goes (a progress bar, a log); every method has a default that
/// does nothing.
pub trait PullProgress {
    /// A blob download starts (or resumes at `offset`).
    fn blob_started(&mut self, _digest: &Digest, _size: u64, _offset: u64) {}
    /// `n` more bytes of a blob arrived.
    fn blob_bytes(&mut self, _digest: &Digest, _n: u64) {}
    /// A blob's request ended (stored, or to be retried).
    fn blob_ended(&mut self, _digest: &Digest) {}
}

/// A [`PullProgress`] that shows nothing.
pub struct NoProgress;
impl PullProgress for NoProgress {}

enum Event {
    /// The head; the pull answers on the channel whether it wants the body, and again (any
    /// value) once it has handled the end, so that the worker keeps the blob's lock until the
    /// blob is committed.
    Head(RequestId, ResponseHead, mpsc::Sender<bool>),
    Chunk(RequestId, Vec<u8>),
    End(RequestId),
    Failed(RequestId, String),
    /// Another process stored the blob while this one waited for its lock.
    Stored(RequestId),
}

struct InFlight {
    stop: Arc<AtomicBool>,
    blob: Option<Digest>,
    ack: Option<mpsc::Sender<bool>>,
}

pub(crate) fn run(
    shared: &Cache,
    client: &HttpClient,
    pull: &mut Pull<BlobWriter>,
    progress: &mut dyn PullProgress,
) -> Result<PullReport> {
    let (events_tx, events) = mpsc::sync_channel::<Event>(CHANNEL_CHUNKS);
    // The pull's store: the same cache, by reference (the workers hold copies of it).
    let cache = &mut { shared };
    std::thread::scope(|scope| {
        let mut in_flight: BTreeMap<RequestId, InFlight> = BTreeMap::new();
        // Requests whose body the pull no longer wants: later chunks are dropped.
        let mut stopped: BTreeSet<RequestId> = BTreeSet::new();
        let result = loop {
            let wait = match pull.poll(cache) {
                Ok(Action::Send(request)) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    let blob = match &request.purpose {
                        Purpose::Blob {
                            digest,
                            size,
                            offset,
                        } => {
                            progress.blob_started(digest, *size, *offset);
                            Some(digest.clone())
                        }
                        _ => None,
                    };
                    in_flight.insert(
                        request.id,
                        InFlight {
                            stop: stop.clone(),
                            blob,
                            ack: None,
                        },
                    );
                    let tx = events_tx.clone();
                    let client = client.clone();
                    scope.spawn(move || perform(shared, &client, request, tx, stop));
                    continue;
                }
                Ok(Action::Done(report)) => break Ok(report),
                Err(e) => break Err(e),
                Ok(Action::Wait) => None,
                Ok(Action::Sleep { delay_ms, .. }) => Some(Duration::from_millis(delay_ms)),
            };
            let event = match wait {
                None => events.recv().ok(),
                Some(d) => match events.recv_timeout(d) {
                    Ok(e) => Some(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Waited by the real clock: due now, whatever the cache's clock says.
                        pull.slept();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(event) = event else {
                // Unreachable while we hold a sender; a pull waiting on nothing is a bug.
                break Err(ocicache_core::Error::InvalidArgument(
                    "internal: the pull waits with nothing in flight".into(),
                ));
            };
            match event {
                Event::Head(id, head, decide) => {
                    let wants = pull.on_head(cache, id, head);
                    let _ = decide.send(wants);
                    if wants {
                        if let Some(f) = in_flight.get_mut(&id) {
                            f.ack = Some(decide);
                        }
                    } else {
                        end_of(&mut in_flight, id, progress);
                    }
                }
                Event::Chunk(id, bytes) => {
                    if stopped.contains(&id) {
                        continue;
                    }
                    if let Some(d) = in_flight.get(&id).and_then(|f| f.blob.as_ref()) {
                        progress.blob_bytes(d, bytes.len() as u64);
                    }
                    if !pull.on_body(cache, id, &bytes) {
                        stopped.insert(id);
                        if let Some(f) = in_flight.get(&id) {
                            f.stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Event::End(id) => {
                    stopped.remove(&id);
                    let ack = end_of(&mut in_flight, id, progress);
                    pull.on_end(cache, id);
                    ack.map(|a| a.send(true));
                }
                Event::Failed(id, message) => {
                    stopped.remove(&id);
                    let ack = end_of(&mut in_flight, id, progress);
                    pull.on_error(cache, id, &message);
                    ack.map(|a| a.send(true));
                }
                Event::Stored(id) => {
                    end_of(&mut in_flight, id, progress);
                    pull.on_stored(cache, id);
                }
            }
        };
        // Done or failed: stop what still runs (its events are drained below and ignored).
        // Dropping the acknowledgement senders too: a worker that reported its end waits on
        // one before it lets go of its blob's lock, and no acknowledgement comes any more.
        for (_, f) in std::mem::take(&mut in_flight) {
            f.stop.store(true, Ordering::Relaxed);
        }
        drop(events_tx);
        while events.recv().is_ok() {}
        result
    })
}

/// Forgets a request; returns the channel its worker waits on before it lets go of its lock.
fn end_of(
    in_flight: &mut BTreeMap<RequestId, InFlight>,
    id: RequestId,
    p: &mut dyn PullProgress,
) -> Option<mpsc::Sender<bool>> {
    let f = in_flight.remove(&id)?;
    if let Some(d) = &f.blob {
        p.blob_ended(d);
    }
    f.ack
}

/// One request on a worker thread: head, then (if wanted) the body in chunks. A blob is
/// fetched under its cross-process lock, and only if it is still not stored once the lock is
/// held.
fn perform(
    cache: &crate::Cache,
    client: &HttpClient,
    request: ocicache_core::pull::HttpRequest,
    events: mpsc::SyncSender<Event>,
    stop: Arc<AtomicBool>,
) {
    let id = request.id;
    let _lock = match &request.purpose {
        Purpose::Blob { digest, .. } => match BlobLock::acquire(cache.dir(), digest, &stop) {
            Ok(Some(lock)) => {
                if cache.has_blob(digest).unwrap_or(false) {
                    let _ = events.send(Event::Stored(id));
                    return;
                }
                Some(lock)
            }
            Ok(None) => {
                let _ = events.send(Event::Failed(id, "the pull ended".into()));
                return;
            }
            // A lock that cannot be taken costs a duplicate download at worst, never the pull.
            Err(_) => None,
        },
        _ => None,
    };
    let (head, mut body) = match client.send(&request) {
        Ok(r) => r,
        Err(message) => {
            let _ = events.send(Event::Failed(id, message));
            return;
        }
    };
    let (decide_tx, decide) = mpsc::channel();
    if events.send(Event::Head(id, head, decide_tx)).is_err() || !decide.recv().unwrap_or(false) {
        return;
    }
    // From here the end is acknowledged: the lock goes once the pull has committed the blob.
    let finish = |event: Event| {
        if events.send(event).is_ok() {
            let _ = decide.recv();
        }
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        if stop.load(Ordering::Relaxed) {
            return finish(Event::End(id));
        }
        let (n, broken) = read_some(&mut body, &mut buf);
        if n > 0 && events.send(Event::Chunk(id, buf[..n].to_vec())).is_err() {
            return;
        }
        if let Some(e) = broken {
            // After the bytes that did arrive: the pull resumes from there.
            return finish(Event::Failed(id, e.to_string()));
        }
        if n == 0 {
            return finish(Event::End(id));
        }
    }
}

/// Fills `buf` from the body (fewer, larger chunks: each costs a lock round in the cache).
/// Returns the bytes read and the error that ended the read, if one did: a transfer that
/// breaks after some bytes yields both, so that the break is never taken for the body's end
/// (a reader need not repeat its error on the next read; ureq's does not).
fn read_some(body: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<std::io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match body.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

#[cfg(test)]
mod tests {
    use super::read_some;
    use std::io::{self, Read};

    /// Gives its chunks, then one error, then end of stream: how ureq's body reader behaves
    /// when the connection drops before `Content-Length` bytes.
    struct Breaking(Vec<io::Result<Vec<u8>>>);

    impl Read for Breaking {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0)?;
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_break_after_some_bytes_is_reported_with_them_never_as_the_end() {
        let mut body = Breaking(vec![
            Ok(vec![1; 100]),
            Ok(vec![2; 50]),
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed")),
        ]);
        let mut buf = vec![0; 1024];
        let (n, broken) = read_some(&mut body, &mut buf);
        assert_eq!(n, 150);
        assert_eq!(&buf[..150], [[1; 100].as_slice(), &[2; 50]].concat());
        assert_eq!(broken.unwrap().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_whole_body_ends_without_an_error() {
        let mut body = Breaking(vec![Ok(vec![7; 10]), Ok(vec![8; 10])]);
        let mut buf = vec![0; 1024];
        let (n, broken) = read_some(&mut body, &mut buf);
        assert_eq!((n, broken.is_none()), (20, true));
        let (n, broken) = read_some(&mut body, &mut buf);
        assert_eq!((n, broken.is_none()), (0, true));
    }
}

#[cfg(test)]
mod shutdown_tests {
    //! The driver's shutdown when a pull fails while other downloads are still going: against
    //! a small loopback HTTP server whose large layer trickles, so that it is mid-body (and
    //! its worker's end not yet acknowledged) when the config's bad bytes fail the pull.

    use crate::pull::{HttpClient, PullOptions};
    use crate::{Cache, EngineKind};
    use ocicache_core::hashing::digest_of;
    use ocicache_core::{Algorithm, BuiltinHasher, ErrorKind};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    fn sha(b: &[u8]) -> String {
        digest_of(&BuiltinHasher, Algorithm::Sha256, b)
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_pull_failing_while_a_layer_trickles_in_returns_promptly() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let small = vec![7u8; 1000];
        let slow = vec![9u8; 4 << 20];
        let desc = |m: &str, b: &[u8]| {
            format!(
                r#"{{"mediaType":"{m}","digest":"{}","size":{}}}"#,
                sha(b),
                b.len()
            )
        };
        let tar = "application/vnd.oci.image.layer.v1.tar";
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{},{}]}}"#,
            desc("application/vnd.oci.image.config.v1+json", &config),
            desc(tar, &small),
            desc(tar, &slow)
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (config_d, small_d, slow_d) = (sha(&config), sha(&small), sha(&slow));
        std::thread::spawn(move || {
            // Bounded: the test makes a handful of requests.
            for stream in listener.incoming().take(16) {
                let Ok(mut stream) = stream else { continue };
                let (manifest, config, small, slow) = (
                    manifest.clone(),
                    config.clone(),
                    small.clone(),
                    slow.clone(),
                );
                let (config_d, small_d, slow_d) =
                    (config_d.clone(), small_d.clone(), slow_d.clone());
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                            break;
                        }
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                    let (body, trickle) = if path.ends_with("/manifests/1") {
                        (manifest.into_bytes(), false)
                    } else if path.ends_with(&config_d) {
                        // Late, so that the layers' heads are handled first.
                        std::thread::sleep(Duration::from_millis(500));
                        let mut bad = config;
                        bad[3] ^= 1; // the pull fails on this blob
                        (bad, false)
                    } else if path.ends_with(&small_d) {
                        (small, false)
                    } else if path.ends_with(&slow_d) {
                        (slow, true)
                    } else {
                        (Vec::new(), false)
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    for piece in body.chunks(if trickle { 64 << 10 } else { body.len().max(1) }) {
                        if stream.write_all(piece).is_err() {
                            return;
                        }
                        if trickle {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let cache = Cache::builder(&root)
                .engine(EngineKind::Native)
                .open()
                .unwrap();
            let reference = format!("127.0.0.1:{port}/app:1").parse().unwrap();
            let options = PullOptions {
                route: ocicache_core::pull::RegistryRoute {
                    plain_http: true,
                    ..Default::default()
                },
                ..PullOptions::default()
            };
            let client = HttpClient::new().unwrap();
            let r = cache.pull_with(&reference, options, &client, &mut super::NoProgress);
            let _ = tx.send(r.map(|_| ()));
        });
        // The trickling layer alone would take 64 × 50 ms = 3.2 s; a stuck shutdown, forever.
        let result = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the failed pull returned");
        assert_eq!(result.unwrap_err().kind(), ErrorKind::DigestMismatch);
    }
}
