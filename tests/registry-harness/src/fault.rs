//! Faults the recording forwarder injects into the registry's responses, for tests of a
//! client's verification and resume logic.

use std::sync::Mutex;

/// What to do to a matching response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pass on only the first `after` bytes of the response body, then drop the connection
    /// (both sides, no TLS close_notify): a registry that died mid-blob. A body no longer
    /// than `after` passes whole.
    CutBody {
        /// Body bytes passed on before the cut.
        after: u64,
    },
    /// XOR the body byte at `offset` (from the start of this response's body, so relative to
    /// a `Range`'s start) with `0x01`; the length and headers stay as they were.
    FlipByte {
        /// Offset into the response body.
        offset: u64,
    },
    /// Answer in the registry's stead, with this status, these headers and this body; the
    /// request never reaches the registry (e.g. a 503, or a 429 with `Retry-After`). It is
    /// logged with this status.
    Respond {
        /// The status code.
        status: u16,
        /// Extra headers (`Content-Length` is added).
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
    /// Set a response header (replacing any of that name), e.g. a wrong
    /// `Docker-Content-Digest`.
    SetHeader {
        /// Header name, matched case-insensitively.
        name: String,
        /// The new value.
        value: String,
    },
}

/// A fault and the requests it applies to.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) method: String,
    pub(crate) path_prefix: String,
    pub(crate) fault: Fault,
    /// How many more responses it applies to.
    pub(crate) remaining: usize,
}

/// The forwarder's active rules; each matching response consumes one use of each rule.
#[derive(Debug, Default)]
pub(crate) struct Faults(Mutex<Vec<Rule>>);

impl Faults {
    pub(crate) fn add(&self, rule: Rule) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(rule);
    }

    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Takes one use of every rule matching this request.
    pub(crate) fn take(&self, method: &str, path: &str) -> Vec<Fault> {
        let mut rules = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = Vec::new();
        for rule in rules.iter_mut() {
            if rule.method.eq_ignore_ascii_case(method) && path.starts_with(&rule.path_prefix) {
                taken.push(rule.fault.clone());
                rule.remaining -= 1;
            }
        }
        rules.retain(|rule| rule.remaining > 0);
        taken
    }
}
