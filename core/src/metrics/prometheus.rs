//! Prometheus text exposition (format 0.0.4).

use super::MetricsSnapshot;
use std::fmt::Write;

impl MetricsSnapshot {
    /// Renders the snapshot as Prometheus text, every metric prefixed `ocicache_`.
    ///
    /// ```
    /// # use ocicache_core::metrics::Metrics;
    /// let text = Metrics::new(0).snapshot(0, 10, 1).to_prometheus();
    /// assert!(text.contains("ocicache_bytes_stored 10\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP ocicache_{name} {help}");
            let _ = writeln!(out, "# TYPE ocicache_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "ocicache_{name}{labels} {v}");
            }
        };
        let c = |v: u64| v as f64;
        metric(
            "hits_total",
            "counter",
            "Reads answered from the cache.",
            &[("", c(self.hits))],
        );
        metric(
            "misses_total",
            "counter",
            "Reads the cache could not answer.",
            &[("", c(self.misses))],
        );
        metric(
            "hit_rate",
            "gauge",
            "Hits over all reads.",
            &[("", self.hit_rate)],
        );
        metric(
            "evictions_total",
            "counter",
            "Entries evicted, by reason.",
            &[
                ("{reason=\"capacity\"}", c(self.evictions_capacity)),
                ("{reason=\"expired\"}", c(self.evictions_expired)),
            ],
        );
        metric(
            "evicted_bytes_total",
            "counter",
            "Bytes freed by eviction.",
            &[("", c(self.bytes_evicted))],
        );
        metric(
            "errors_total",
            "counter",
            "Failed operations.",
            &[("", c(self.errors))],
        );
        metric(
            "corruptions_total",
            "counter",
            "Entries found corrupted.",
            &[("", c(self.corruptions))],
        );
        metric(
            "bytes_stored",
            "gauge",
            "Bytes of all entries.",
            &[("", c(self.bytes_stored))],
        );
        metric(
            "entries_stored",
            "gauge",
            "Entries.",
            &[("", c(self.entries_stored))],
        );
        metric(
            "retrieved_bytes_total",
            "counter",
            "Bytes read from storage.",
            &[("", c(self.bytes_retrieved))],
        );
        metric(
            "network_requests_total",
            "counter",
            "Fetches reported by the host.",
            &[("", c(self.network_requests))],
        );
        metric(
            "downloaded_bytes_total",
            "counter",
            "Bytes fetched and stored.",
            &[("", c(self.bytes_downloaded))],
        );
        metric(
            "served_bytes_total",
            "counter",
            "Bytes served from the cache.",
            &[("", c(self.bytes_served))],
        );
        metric(
            "bandwidth_saved_bytes_total",
            "counter",
            "Bytes not downloaded thanks to the cache.",
            &[("", c(self.bandwidth_saved))],
        );
        metric(
            "operations_total",
            "counter",
            "Operations by kind and type.",
            &[
                ("{kind=\"manifest\",op=\"get\"}", c(self.manifest_gets)),
                ("{kind=\"manifest\",op=\"put\"}", c(self.manifest_puts)),
                ("{kind=\"blob\",op=\"get\"}", c(self.blob_gets)),
                ("{kind=\"blob\",op=\"put\"}", c(self.blob_puts)),
                ("{kind=\"tag\",op=\"resolve\"}", c(self.tag_resolutions)),
                ("{kind=\"tag\",op=\"put\"}", c(self.tag_puts)),
                ("{kind=\"any\",op=\"delete\"}", c(self.deletes)),
            ],
        );
        let s = |ns: u64| ns as f64 / 1e9;
        for (op, p50, p95, p99, avg, n) in [
            (
                "get",
                self.get_latency_p50_ns,
                self.get_latency_p95_ns,
                self.get_latency_p99_ns,
                self.avg_get_latency_ns,
                self.get_latency_samples,
            ),
            (
                "put",
                self.put_latency_p50_ns,
                self.put_latency_p95_ns,
                self.put_latency_p99_ns,
                self.avg_put_latency_ns,
                self.put_latency_samples,
            ),
            (
                "delete",
                self.delete_latency_p50_ns,
                self.delete_latency_p95_ns,
                self.delete_latency_p99_ns,
                self.avg_delete_latency_ns,
                self.delete_latency_samples,
            ),
        ] {
            let q = |quant: &str| format!("{{op=\"{op}\",quantile=\"{quant}\"}}");
            let (l50, l95, l99) = (q("0.5"), q("0.95"), q("0.99"));
            let sum_label = format!("_sum{{op=\"{op}\"}}");
            let count_label = format!("_count{{op=\"{op}\"}}");
            metric(
                &format!("{op}_latency_seconds"),
                "summary",
                "Operation latency.",
                &[
                    (&l50, s(p50)),
                    (&l95, s(p95)),
                    (&l99, s(p99)),
                    (&sum_label, s(avg) * n as f64),
                    (&count_label, c(n)),
                ],
            );
        }
        metric(
            "uptime_seconds",
            "gauge",
            "Time since open.",
            &[("", self.uptime_ms as f64 / 1e3)],
        );
        metric(
            "peak_bytes_stored",
            "gauge",
            "Most bytes stored at once.",
            &[("", c(self.peak_bytes_stored))],
        );
        metric(
            "peak_entries_stored",
            "gauge",
            "Most entries stored at once.",
            &[("", c(self.peak_entries_stored))],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Metrics;

    #[test]
    fn every_sample_line_is_well_formed() {
        let mut m = Metrics::new(0);
        m.hit(1);
        m.latency(crate::metrics::OpClass::Get, 1500);
        let text = m.snapshot(10, 5, 1).to_prometheus();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("ocicache_"), "{line}");
            value.parse::<f64>().unwrap();
        }
        assert!(text.contains("ocicache_hits_total 1\n"));
        assert!(text.contains("ocicache_get_latency_seconds_count{op=\"get\"} 1\n"));
    }
}
