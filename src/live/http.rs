//! A small HTTP layer over ureq: timeouts, and retries with exponential backoff and jitter
//! for throttling (429), server errors, dropped connections and malformed bodies.
//! Requests carry credentials in headers only; errors never echo headers.

use std::time::Duration;

use super::backend::BackendError;

pub struct Http {
    agent: ureq::Agent,
    /// Divides retry waits (rehearsals run faster).
    pub time_scale: f64,
    pub max_tries: u32,
    seed: u64,
}

/// How one try ended.
pub enum Outcome {
    Ok(serde_json::Value),
    /// Safe to retry: the server did not act (429, or a GET).
    Retry(String),
    /// The server may have acted (POST with a 5xx, reset or bad body): reconcile first.
    Ambiguous(String),
    Fatal(String),
}

impl Http {
    pub fn new(time_scale: f64) -> Http {
        // --time-scale divides every wait of a rehearsal, network timeouts included.
        let scaled = |s: f64| Duration::from_secs_f64((s / time_scale.max(1e-6)).max(1.0));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(scaled(5.0))
            .timeout(scaled(20.0))
            .build();

        Http {
            agent,
            time_scale: time_scale.max(1e-6),
            max_tries: 8,
            seed: 0x5EED,
        }
    }

    /// One try of a request; `body` = None means GET.
    pub fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&serde_json::Value>,
    ) -> Outcome {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        self.once_bytes(method, url, headers, bytes.as_deref())
    }

    /// One try with exact body bytes (signed requests need the bytes they signed).
    pub fn once_bytes(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Outcome {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let is_post = method != "GET";
        let resp = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None => req.call(),
        };
        let ambiguous_or_retry = |m: String| {
            if is_post {
                Outcome::Ambiguous(m)
            } else {
                Outcome::Retry(m)
            }
        };
        match resp {
            Ok(r) => {
                let status = r.status();
                let text = r.into_string().unwrap_or_default();
                if text.trim().is_empty() {
                    return Outcome::Ok(serde_json::Value::Null);
                }
                match serde_json::from_str(&text) {
                    Ok(v) => Outcome::Ok(v),
                    Err(_) => ambiguous_or_retry(format!(
                        "{method} {url}: HTTP {status} with a malformed JSON body"
                    )),
                }
            }
            Err(ureq::Error::Status(429, _)) => {
                Outcome::Retry(format!("{method} {url}: throttled (429)"))
            }
            Err(ureq::Error::Status(code, r)) if code >= 500 => {
                let _ = r.into_string();
                ambiguous_or_retry(format!("{method} {url}: HTTP {code}"))
            }
            Err(ureq::Error::Status(code, r)) => {
                let detail = r.into_string().unwrap_or_default();
                let detail: String = detail.chars().take(200).collect();
                if detail.contains("Throttling") || detail.contains("TooManyRequests") {
                    // AWS also throttles with a 400 ThrottlingException: nothing was done.
                    return Outcome::Retry(format!("{method} {url}: throttled ({code})"));
                }
                Outcome::Fatal(format!("{method} {url}: HTTP {code} {detail}"))
            }
            Err(ureq::Error::Transport(t)) => {
                ambiguous_or_retry(format!("{method} {url}: {}", t.kind()))
            }
        }
    }

    /// Sleeps before retry `n` (1-based): min(0.5·2^n, 30) s with ±20% jitter, over the time scale.
    pub fn backoff(&mut self, n: u32) {
        self.seed = crate::engine::backoff::mix(self.seed.wrapping_add(u64::from(n)));
        let u = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        let secs = (0.5 * 2f64.powi(n.min(10) as i32)).min(30.0) * (0.8 + 0.4 * u);
        std::thread::sleep(Duration::from_secs_f64(secs / self.time_scale));
    }

    /// A GET with retries on anything transient.
    pub fn get(
        &mut self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<serde_json::Value, BackendError> {
        let mut last = String::new();
        for n in 1..=self.max_tries {
            match self.once("GET", url, headers, None) {
                Outcome::Ok(v) => return Ok(v),
                Outcome::Fatal(m) => return Err(BackendError(m)),
                Outcome::Retry(m) | Outcome::Ambiguous(m) => last = m,
            }
            self.backoff(n);
        }
        Err(BackendError(format!(
            "gave up after {} tries: {last}",
            self.max_tries
        )))
    }
}
