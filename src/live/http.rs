//! A small HTTP layer over ureq: one try per call, with timeouts, and a typed answer that
//! says whether the server may have acted. It never sleeps and never retries: retries are
//! timers of the driver loop. Requests carry credentials in headers only, and errors never
//! echo headers or bodies that could hold them.

use std::time::Duration;

/// How a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The server did not act and says to slow down (429, or a throttling error type).
    Throttled(String),
    /// Nothing was done (a read that can simply be repeated, or a 5xx to one).
    Transient(String),
    /// No connection could be opened (refused, or the host is unknown): nothing was sent.
    Unreachable(String),
    /// The server may have acted (a write answered 5xx, reset, timed out or garbled):
    /// look the operation up before doing anything else.
    Ambiguous(String),
    /// The credentials were refused (401, 403).
    Auth(String),
    /// The resource does not exist (404).
    NotFound(String),
    /// It exists already (409 and the like).
    Conflict(String),
    /// The request is wrong and repeating it will not help (other 4xx).
    Invalid(String),
}

impl CallError {
    pub fn message(&self) -> &str {
        match self {
            CallError::Throttled(m)
            | CallError::Transient(m)
            | CallError::Unreachable(m)
            | CallError::Ambiguous(m)
            | CallError::Auth(m)
            | CallError::NotFound(m)
            | CallError::Conflict(m)
            | CallError::Invalid(m) => m,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Error types that mean "slow down" on AWS, whatever the status code.
fn is_throttle_type(t: &str) -> bool {
    matches!(
        t,
        "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "LimitExceededException"
            | "RequestLimitExceeded"
    )
}

/// The AWS error type of an answer: the `x-amzn-ErrorType` header, else `__type` in the
/// body; either may carry a `:`-suffix or a namespace prefix (`aws.protocols#…`).
pub fn error_type(header: Option<&str>, body: &str) -> Option<String> {
    let raw = header.map(str::to_string).or_else(|| {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()?
            .get("__type")?
            .as_str()
            .map(str::to_string)
    })?;
    let t = raw.split(':').next().unwrap_or("");
    let t = t.rsplit('#').next().unwrap_or(t);
    Some(t.to_string()).filter(|t| !t.is_empty())
}

pub struct Http {
    agent: ureq::Agent,
    /// The client timeout in wall-clock seconds (a rehearsal's is scaled down).
    pub timeout_s: f64,
}

impl Http {
    pub fn new(time_scale: f64) -> Http {
        // --time-scale divides every wait of a rehearsal, network timeouts included.
        let timeout_s = (20.0 / time_scale.max(1e-6)).max(1.0);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs_f64(timeout_s.min(5.0)))
            .timeout(Duration::from_secs_f64(timeout_s))
            .build();
        Http { agent, timeout_s }
    }

    /// One try of a request with exact body bytes; `body = None` sends none.
    /// Only a GET (or a HEAD) is a pure read; any other method may change state.
    pub fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<serde_json::Value, CallError> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let writes = !matches!(method, "GET" | "HEAD");
        let resp = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let what = format!("{method} {}", strip_query(url));
        let maybe_acted = |m: String| {
            if writes {
                CallError::Ambiguous(m)
            } else {
                CallError::Transient(m)
            }
        };
        match resp {
            Ok(r) => {
                let status = r.status();
                let text = r.into_string().unwrap_or_default();
                if text.trim().is_empty() {
                    return Ok(serde_json::Value::Null);
                }
                serde_json::from_str(&text).map_err(|_| {
                    maybe_acted(format!("{what}: HTTP {status} with a malformed JSON body"))
                })
            }
            Err(ureq::Error::Status(code, r)) => {
                let header = r.header("x-amzn-ErrorType").map(str::to_string);
                let text = r.into_string().unwrap_or_default();
                let etype = error_type(header.as_deref(), &text);
                let named = etype
                    .as_deref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default();
                let m = format!("{what}: HTTP {code}{named}");
                if code == 429 || etype.as_deref().is_some_and(is_throttle_type) {
                    return Err(CallError::Throttled(m));
                }
                Err(match code {
                    401 | 403 => CallError::Auth(m),
                    404 => CallError::NotFound(m),
                    409 => CallError::Conflict(m),
                    500..=599 => maybe_acted(m),
                    _ => CallError::Invalid(m),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                let m = format!("{what}: {}", t.kind());
                // A connection that never opened carried nothing.
                if t.kind() == ureq::ErrorKind::ConnectionFailed || t.kind() == ureq::ErrorKind::Dns
                {
                    Err(CallError::Unreachable(m))
                } else {
                    Err(maybe_acted(m))
                }
            }
        }
    }
}

/// Query strings may hold page tokens; messages show only the path.
fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_come_from_the_header_or_the_body() {
        assert_eq!(
            error_type(Some("ThrottlingException:http://internal"), ""),
            Some("ThrottlingException".into())
        );
        assert_eq!(
            error_type(
                None,
                r#"{"__type":"aws.protocols#ResourceAlreadyExistsException","message":"1.409.0"}"#
            ),
            Some("ResourceAlreadyExistsException".into())
        );
        assert_eq!(error_type(None, "not json 409"), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(encode_query("x-y_z.~1"), "x-y_z.~1");
    }
}
