//! A Watson IoT v0002 device-management platform on 127.0.0.1. Each device's download time
//! comes from its simulated profile (window/RTT and last-mile caps), its install time from
//! `install.seconds`, and its failures from the scenario's fault rates; `--fail` devices
//! always fail their update. Faults can be injected per request to test clients.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Response, Server};

use crate::live::inventory::Inventory;
use crate::scenario::Scenario;
use crate::world::gateway::Profile;

pub struct Config {
    pub scenario: Scenario,
    pub inventory: Inventory,
    pub speed: f64,
    pub fail: Vec<String>,
    pub faults: Vec<(String, f64)>,
    pub seed: u64,
    pub auth: String,
}

struct DeviceOp {
    type_id: String,
    device: String,
    finish: Instant,
    ok: bool,
    cancelled: bool,
}

struct Request {
    id: String,
    action: String,
    parameters: Value,
    ops: Vec<DeviceOp>,
}

struct State {
    cfg: Config,
    requests: Vec<Request>,
    rng: Pcg64,
    update_requests: BTreeMap<String, u32>,
    succeeded_at: BTreeMap<String, Instant>,
    after_success: BTreeMap<String, u32>,
    injected: BTreeMap<String, u32>,
    cancels: u32,
    /// Update requests that arrived while another for the same device was still running.
    overlapping: BTreeMap<String, u32>,
    update_failures: BTreeMap<String, u32>,
}

/// Parses `429=0.1,reset=0.05`.
pub fn parse_faults(s: &str) -> Result<Vec<(String, f64)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("fault `{p}`: expected KIND=PROBABILITY"))?;
            let k = k.trim().to_string();
            if !["429", "500", "503", "reset", "garbage", "slow"].contains(&k.as_str()) {
                return Err(format!(
                    "unknown fault `{k}` (429, 500, 503, reset, garbage, slow)"
                ));
            }
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("fault `{p}`: not a probability"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("fault `{p}`: probability must be in [0, 1]"));
            }
            Ok((k, v))
        })
        .collect()
}

impl State {
    fn duration(&mut self, device: &str, action: &str) -> (Duration, bool) {
        let s = &self.cfg.scenario;
        let index = self
            .cfg
            .inventory
            .devices
            .iter()
            .position(|d| d.id == device)
            .unwrap_or(0) as u32;
        let p = Profile::draw(s, self.cfg.seed, index);
        let secs = if action == "firmware/download" {
            let rate = p.last_mile_bps.min(Profile::window_cap_bps(
                s.network.tcp_window_kb,
                p.origin_rtt_ms,
            ));
            s.firmware.size_mb * 8e6 / rate.max(1.0)
        } else {
            s.install.seconds.sample(&mut self.rng)
        };
        let f = &s.failures;
        let fail = if action == "firmware/download" {
            self.rng.random_bool(f.verify_failure_rate.clamp(0.0, 1.0))
        } else {
            self.cfg.fail.iter().any(|d| d == device)
                || self.rng.random_bool(f.install_failure_rate.clamp(0.0, 1.0))
        };
        (
            Duration::from_secs_f64((secs / self.cfg.speed).max(0.0)),
            !fail,
        )
    }

    fn create(&mut self, body: &Value) -> Result<String, String> {
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .ok_or("missing action")?
            .to_string();
        if action != "firmware/download" && action != "firmware/update" {
            return Err(format!("unsupported action {action}"));
        }
        let devices = body
            .get("devices")
            .and_then(Value::as_array)
            .ok_or("missing devices")?;
        let now = Instant::now();
        let mut ops = Vec::new();
        for d in devices {
            let device = d
                .get("deviceId")
                .and_then(Value::as_str)
                .ok_or("device without deviceId")?
                .to_string();
            let type_id = d
                .get("typeId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !self.cfg.inventory.devices.iter().any(|x| x.id == device) {
                return Err(format!("unknown device {device}"));
            }
            let (dur, mut ok) = self.duration(&device, &action);
            if action == "firmware/update" {
                let running = self
                    .requests
                    .iter()
                    .filter(|r| r.action == "firmware/update")
                    .flat_map(|r| &r.ops)
                    .any(|o| o.device == device && !o.cancelled && now < o.finish);
                if running {
                    *self.overlapping.entry(device.clone()).or_default() += 1;
                }
                *self.update_requests.entry(device.clone()).or_default() += 1;
                if let Some(t) = self.succeeded_at.get(&device) {
                    if *t <= now {
                        *self.after_success.entry(device.clone()).or_default() += 1;
                        ok = true;
                    }
                }
                if ok && !self.succeeded_at.contains_key(&device) {
                    self.succeeded_at.insert(device.clone(), now + dur);
                }
            }
            if action == "firmware/update" && !ok {
                *self.update_failures.entry(device.clone()).or_default() += 1;
            }
            ops.push(DeviceOp {
                type_id,
                device,
                finish: now + dur,
                ok,
                cancelled: false,
            });
        }
        let id = format!("req-{:05}", self.requests.len() + 1);
        self.requests.push(Request {
            id: id.clone(),
            action,
            parameters: body.get("parameters").cloned().unwrap_or(json!([])),
            ops,
        });
        Ok(id)
    }

    fn device_status(&self, r: &Request) -> Value {
        let now = Instant::now();
        let results: Vec<Value> = r
            .ops
            .iter()
            .map(|o| {
                let (status, complete) = if o.cancelled {
                    (3, true)
                } else if now < o.finish {
                    (1, false)
                } else if o.ok {
                    (0, true)
                } else {
                    (-1, true)
                };
                json!({ "typeId": o.type_id, "deviceId": o.device, "status": status, "complete": complete })
            })
            .collect();
        json!({ "results": results })
    }

    fn complete(r: &Request) -> bool {
        let now = Instant::now();
        r.ops.iter().all(|o| o.cancelled || now >= o.finish)
    }
}

fn json_response(code: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r =
        Response::from_data(serde_json::to_vec(v).unwrap_or_default()).with_status_code(code);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        r.add_header(h);
    }
    r
}

/// The Basic credential the emulator accepts, from the same variables clients use.
pub fn expected_auth(key: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:{token}"))
    )
}

/// Serves until the process is stopped. Prints `listening on http://127.0.0.1:PORT`.
pub fn serve(cfg: Config, port: u16) -> Result<(), String> {
    let server = Server::http(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = server.server_addr().to_ip().ok_or("no IP address")?;
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let seed = cfg.seed;
    let mut st = State {
        cfg,
        requests: Vec::new(),
        rng: Pcg64::seed_from_u64(seed),
        update_requests: BTreeMap::new(),
        succeeded_at: BTreeMap::new(),
        after_success: BTreeMap::new(),
        injected: BTreeMap::new(),
        cancels: 0,
        overlapping: BTreeMap::new(),
        update_failures: BTreeMap::new(),
    };
    for mut req in server.incoming_requests() {
        let url = req.url().to_string();
        let path = url.split('?').next().unwrap_or("").to_string();
        let method = req.method().clone();
        if path == "/_emulator/stats" {
            let v = json!({
                "requests": st.requests.len(),
                "update_requests": st.update_requests,
                "updates_after_success": st.after_success,
                "updated": st.succeeded_at.keys().collect::<Vec<_>>(),
                "injected": st.injected,
                "cancels": st.cancels,
                "overlapping_updates": st.overlapping,
                "update_failures": st.update_failures,

            });
            let _ = req.respond(json_response(200, &v));
            continue;
        }
        let authorised = req
            .headers()
            .iter()
            .any(|h| h.field.equiv("Authorization") && h.value.as_str() == st.cfg.auth);
        if !authorised {
            let _ = req.respond(json_response(401, &json!({ "message": "unauthorized" })));
            continue;
        }
        // Fault injection: one draw per request.
        let u: f64 = st.rng.random();
        let mut acc = 0.0;
        let mut fault = None;
        for (k, p) in &st.cfg.faults {
            acc += p;
            if u < acc {
                fault = Some(k.clone());
                break;
            }
        }
        if let Some(f) = &fault {
            *st.injected.entry(f.clone()).or_default() += 1;
        }
        match fault.as_deref() {
            Some("429") => {
                let _ = req.respond(json_response(429, &json!({ "message": "rate limited" })));
                continue;
            }
            Some("500") => {
                let _ = req.respond(json_response(500, &json!({ "message": "internal error" })));
                continue;
            }
            // Longer than a rehearsal client's timeout: the client gives up, then the platform acts.
            Some("slow") => std::thread::sleep(Duration::from_millis(1500)),
            _ => {}
        }
        let mut body = String::new();
        let _ = req.as_reader().read_to_string(&mut body);
        let segs: Vec<&str> = path
            .trim_start_matches("/api/v0002/mgmt/requests")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (code, value) = if !path.starts_with("/api/v0002/mgmt/requests") {
            (404, json!({ "message": "not found" }))
        } else {
            match (&method, segs.as_slice()) {
                (Method::Post, []) => match serde_json::from_str::<Value>(&body)
                    .map_err(|e| e.to_string())
                    .and_then(|b| st.create(&b))
                {
                    Ok(id) => (202, json!({ "reqId": id })),
                    Err(m) => (400, json!({ "message": m })),
                },
                (Method::Get, []) => {
                    let results: Vec<Value> = st
                        .requests
                        .iter()
                        .map(|r| json!({ "id": r.id, "action": r.action, "parameters": r.parameters, "complete": State::complete(r) }))
                        .collect();
                    (200, json!({ "results": results }))
                }
                (Method::Get, [id]) => match st.requests.iter().find(|r| r.id == *id) {
                    Some(r) => (
                        200,
                        json!({ "id": r.id, "action": r.action, "complete": State::complete(r) }),
                    ),
                    None => (404, json!({ "message": "no such request" })),
                },
                (Method::Get, [id, "deviceStatus"]) => {
                    match st.requests.iter().find(|r| r.id == *id) {
                        Some(r) => (200, st.device_status(r)),
                        None => (404, json!({ "message": "no such request" })),
                    }
                }
                (Method::Post, [id, "cancel"]) => {
                    match st.requests.iter_mut().find(|r| r.id == *id) {
                        Some(r) => {
                            st.cancels += 1;
                            let now = Instant::now();

                            for o in r.ops.iter_mut().filter(|o| now < o.finish) {
                                o.cancelled = true;
                                if r.action == "firmware/update"
                                    && st.succeeded_at.get(&o.device).is_some_and(|t| *t > now)
                                {
                                    st.succeeded_at.remove(&o.device);
                                }
                            }
                            (200, json!({}))
                        }
                        None => (404, json!({ "message": "no such request" })),
                    }
                }
                _ => (405, json!({ "message": "method not allowed" })),
            }
        };
        // Faults that strike after the platform acted: the dangerous kind for a client.
        match fault.as_deref() {
            Some("503") => {
                let _ = req.respond(json_response(503, &json!({ "message": "unavailable" })));
            }
            Some("reset") => drop(req.into_writer()),
            Some("garbage") => {
                let _ = req.respond(Response::from_string("{\"reqId\": ").with_status_code(code));
            }
            _ => {
                let _ = req.respond(json_response(code, &value));
            }
        }
    }
    Ok(())
}
