//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a loopback upstream (MiniStack, or
//! any platform double): it forwards each request unchanged and, by a seeded draw, spoils
//! the answer the way real networks and overloaded services do. Write faults strike after
//! the upstream acted, which is the dangerous case for a client. `/_proxy/stats` counts.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use tiny_http::{Header, Response};

pub const FAULTS: [&str; 4] = ["post500", "postslow", "postreset", "get503"];

/// Longer than a rehearsal client's timeout.
const SLOW: Duration = Duration::from_millis(1500);

pub struct Config {
    pub upstream: String,
    pub faults: Vec<(String, f64)>,
    pub seed: u64,
}

/// Headers that describe the connection, not the request: never forwarded.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "accept-encoding"
    )
}

/// Serves until stopped. Prints `listening on http://127.0.0.1:PORT`.
pub fn serve(cfg: Config, port: u16) -> Result<(), String> {
    let server = super::listen(port)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let injected: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    for mut req in server.incoming_requests() {
        let url = req.url().to_string();
        if url == "/_proxy/stats" {
            let body = injected
                .lock()
                .map(|m| serde_json::json!({ "injected": *m }).to_string())
                .unwrap_or_default();
            let _ = req.respond(Response::from_string(body));
            continue;
        }
        let method = req.method().as_str().to_string();
        let writes = !matches!(method.as_str(), "GET" | "HEAD");
        // post* faults strike writes only, get* faults reads only.
        let fault = super::draw_fault(rng.random(), &cfg.faults)
            .filter(|f| f.starts_with("post") == writes);
        if let (Some(f), Ok(mut m)) = (&fault, injected.lock()) {
            *m.entry(f.clone()).or_default() += 1;
        }
        let mut body = Vec::new();
        let _ = req.as_reader().read_to_end(&mut body);
        if fault.as_deref() == Some("get503") {
            let _ = req.respond(Response::from_string("unavailable").with_status_code(503));
            continue;
        }
        let mut up = agent.request(&method, &format!("{}{url}", cfg.upstream));
        for h in req.headers() {
            let name = h.field.as_str().as_str();
            // Host too: a signature covers the host the client signed for.
            if !hop_by_hop(name) {
                up = up.set(name, h.value.as_str());
            }
        }
        let answer = if body.is_empty() && !writes {
            up.call()
        } else {
            up.send_bytes(&body)
        };
        let (code, headers, bytes) = match answer {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let code = r.status();
                let headers: Vec<(String, String)> = r
                    .headers_names()
                    .into_iter()
                    .filter(|n| !hop_by_hop(n))
                    .filter_map(|n| r.header(&n).map(|v| (n.clone(), v.to_string())))
                    .collect();
                let mut bytes = Vec::new();
                let _ = r.into_reader().read_to_end(&mut bytes);
                (code, headers, bytes)
            }
            Err(e) => (
                502,
                Vec::new(),
                format!("upstream: {}", e.kind()).into_bytes(),
            ),
        };
        let respond = move |req: tiny_http::Request, code: u16| {
            let mut resp = Response::from_data(bytes).with_status_code(code);
            for (k, v) in &headers {
                if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    resp.add_header(h);
                }
            }
            let _ = req.respond(resp);
        };
        match fault.as_deref() {
            Some("post500") => {
                let _ = req.respond(Response::from_string("internal error").with_status_code(500));
            }
            Some("postreset") => drop(req.into_writer()),
            Some("postslow") => {
                std::thread::spawn(move || {
                    std::thread::sleep(SLOW);
                    respond(req, code);
                });
            }
            _ => respond(req, code),
        }
    }
    Ok(())
}
