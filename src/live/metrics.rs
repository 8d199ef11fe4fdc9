//! Prometheus metrics of a live rollout, served on loopback in the text exposition format
//! (version 0.0.4): gateways by state, the wave, attempts, backend requests by operation and
//! outcome with their latency histogram, and whether the rollout is halted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::CallError;
use crate::engine::Status;

/// Upper bounds of the request latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const STATES: [(Status, &str); Status::COUNT] = [
    (Status::Waiting, "waiting"),
    (Status::Ready, "ready"),
    (Status::Checking, "checking"),
    (Status::Deferred, "deferred"),
    (Status::InFlight, "in_flight"),
    (Status::RetryWait, "retry_wait"),
    (Status::Succeeded, "succeeded"),
    (Status::Failed, "failed"),
    (Status::RolledBack, "rolled_back"),
    (Status::Skipped, "skipped"),
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of `BUCKETS`.
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    gateways: [u32; Status::COUNT],
    wave: u64,
    attempts: u64,
    halted: bool,
    requests: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

pub type Shared = Arc<Mutex<Metrics>>;

/// The outcome label of a backend call.
pub fn outcome<T>(r: &Result<T, CallError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(CallError::Throttled(_)) => "throttled",
        Err(CallError::Transient(_)) => "transient",
        Err(CallError::Unreachable(_)) => "unreachable",
        Err(CallError::Ambiguous(_)) => "ambiguous",
        Err(CallError::Auth(_)) => "auth",
        Err(CallError::NotFound(_)) => "not_found",
        Err(CallError::Conflict(_)) => "conflict",
        Err(CallError::Invalid(_)) => "invalid",
    }
}

impl Metrics {
    pub fn set_gateways(&mut self, counts: [u32; Status::COUNT], halted: bool) {
        self.gateways = counts;
        self.halted = halted;
    }

    /// Waves released so far (the current wave, 1-based).
    pub fn wave_released(&mut self, wave: usize) {
        self.wave = self.wave.max(wave as u64 + 1);
    }

    pub fn attempt(&mut self) {
        self.attempts += 1;
    }

    pub fn request(&mut self, op: &'static str, outcome: &'static str, took: Duration) {
        *self.requests.entry((op, outcome)).or_default() += 1;
        let h = self.latency.entry(op).or_default();
        let s = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if s <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "stagger_gateways",
            "gauge",
            "Gateways by rollout state.",
        );
        for (status, name) in STATES {
            let _ = writeln!(
                out,
                "stagger_gateways{{state=\"{name}\"}} {}",
                self.gateways[status as usize]
            );
        }
        head(&mut out, "stagger_wave", "gauge", "Waves released so far.");
        let _ = writeln!(out, "stagger_wave {}", self.wave);
        head(
            &mut out,
            "stagger_attempts_total",
            "counter",
            "Update attempts started.",
        );
        let _ = writeln!(out, "stagger_attempts_total {}", self.attempts);
        head(
            &mut out,
            "stagger_halted",
            "gauge",
            "1 when a safety rule has halted the rollout.",
        );
        let _ = writeln!(out, "stagger_halted {}", u8::from(self.halted));
        head(
            &mut out,
            "stagger_backend_requests_total",
            "counter",
            "Calls to the device-management backend, by operation and outcome.",
        );
        for ((op, code), n) in &self.requests {
            let _ = writeln!(
                out,
                "stagger_backend_requests_total{{op=\"{op}\",code=\"{code}\"}} {n}"
            );
        }
        head(
            &mut out,
            "stagger_backend_request_seconds",
            "histogram",
            "Latency of calls to the backend, by operation.",
        );
        for (op, h) in &self.latency {
            for (le, c) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "stagger_backend_request_seconds_bucket{{op=\"{op}\",le=\"{le}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "stagger_backend_request_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "stagger_backend_request_seconds_sum{{op=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "stagger_backend_request_seconds_count{{op=\"{op}\"}} {}",
                h.count
            );
        }
        out
    }
}

/// Parses `--metrics-addr`: a loopback address and port only.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|e| format!("--metrics-addr `{s}`: {e} (expected e.g. 127.0.0.1:9464)"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--metrics-addr `{s}`: metrics are served on loopback only (127.0.0.1 or [::1]); put a proxy in front to expose them"
        ));
    }
    Ok(addr)
}

/// Serves `/metrics` from a background thread for the life of the process; returns the
/// address it is bound to.
pub fn serve(addr: SocketAddr, shared: Shared) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or("metrics: no IP address")?;
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let response = if req.url() == "/metrics" {
                let body = shared.lock().map(|m| m.render()).unwrap_or_default();
                let mut r = tiny_http::Response::from_string(body);
                if let Ok(h) = tiny_http::Header::from_bytes(
                    &b"Content-Type"[..],
                    &b"text/plain; version=0.0.4; charset=utf-8"[..],
                ) {
                    r.add_header(h);
                }
                r
            } else {
                tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
            };
            let _ = req.respond(response);
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_and_cumulative_buckets() {
        let mut m = Metrics::default();
        m.request("status", "ok", Duration::from_millis(30));
        m.request("status", "throttled", Duration::from_millis(3));
        m.attempt();
        m.wave_released(0);
        let text = m.render();
        for want in [
            "stagger_gateways{state=\"succeeded\"} 0",
            "stagger_wave 1",
            "stagger_attempts_total 1",
            "stagger_halted 0",
            "stagger_backend_requests_total{op=\"status\",code=\"throttled\"} 1",
            "stagger_backend_request_seconds_bucket{op=\"status\",le=\"0.005\"} 1",
            "stagger_backend_request_seconds_bucket{op=\"status\",le=\"0.05\"} 2",
            "stagger_backend_request_seconds_count{op=\"status\"} 2",
        ] {
            assert!(text.contains(want), "missing {want} in:\n{text}");
        }
    }

    #[test]
    fn only_loopback_addresses_are_served() {
        assert!(parse_addr("127.0.0.1:0").is_ok());
        assert!(parse_addr("[::1]:9464").is_ok());
        assert!(parse_addr("0.0.0.0:9464").is_err());
        assert!(parse_addr("localhost").is_err());
    }
}
