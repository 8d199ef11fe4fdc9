//! A Watson IoT Platform v0002 device-management double on 127.0.0.1, following IBM's
//! documented API rather than our client: `POST /api/v0002/mgmt/requests` (202 `{reqId}`),
//! `GET` lists paged by `_bookmark`, `GET …/{id}`, `GET …/{id}/deviceStatus` (paged),
//! and `DELETE …/{id}`, which only clears a request's status record. There is no cancel.
//! A `firmware/update` request targets one device type and at most 5,000 devices. A device
//! refuses a download unless idle, and an update unless its download has finished.
//!
//! Device times come from the simulator's world model (window/RTT and last-mile caps,
//! `install.seconds`), failures from the scenario's fault rates and `--fail`. Faults can be
//! injected per request. `/_emulator/stats` reports what the platform saw.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request as HttpRequest, Response};

use crate::live::inventory::Inventory;
use crate::scenario::Scenario;
use crate::world::gateway::Profile;

pub struct Config {
    pub scenario: Scenario,
    pub inventory: Inventory,
    pub speed: f64,
    pub fail: Vec<String>,
    pub faults: Vec<(String, f64)>,
    pub page_size: usize,
    pub seed: u64,
    pub auth: String,
}

pub const FAULTS: [&str; 8] = [
    "429", "500", "503", "reset", "garbage", "slow", "post500", "postslow",
];
/// Longer than a rehearsal client's timeout.
const SLOW: Duration = Duration::from_millis(1500);

/// Device status codes in `deviceStatus`: 0 success, 1 in progress, others failures.
const OK: i64 = 0;
const IN_PROGRESS: i64 = 1;
const FAILED: i64 = 2;
const REFUSED_BUSY: i64 = 3;
const REFUSED_NOT_DOWNLOADED: i64 = 4;

struct DeviceOp {
    type_id: String,
    device: String,
    finish: Instant,
    status: i64,
}

struct MgmtRequest {
    id: String,
    action: String,
    parameters: Value,
    ops: Vec<DeviceOp>,
}

#[derive(Default)]
struct Device {
    busy_until: Option<Instant>,
    /// When this device's download of the firmware finished (successfully).
    downloaded_at: Option<Instant>,
    updated_at: Option<Instant>,
}

#[derive(Default)]
struct Seen {
    posts: u32,
    download_requests: BTreeMap<String, u32>,
    update_requests: BTreeMap<String, u32>,
    update_failures: BTreeMap<String, u32>,
    after_success: BTreeMap<String, u32>,
    overlapping: BTreeMap<String, u32>,
    injected: BTreeMap<String, u32>,
    max_in_flight: usize,
}

struct State {
    cfg: Config,
    requests: Vec<MgmtRequest>,
    devices: BTreeMap<String, Device>,
    /// Registered devices, (typeId, deviceId) → their metadata (the documented device API).
    registry: BTreeMap<(String, String), Value>,
    rng: Pcg64,
    seen: Seen,
}

impl State {
    fn seconds(&mut self, device: &str, action: &str) -> (f64, bool) {
        let s = &self.cfg.scenario;
        let index = self
            .cfg
            .inventory
            .devices
            .iter()
            .position(|d| d.id == device)
            .unwrap_or(0) as u32;
        let p = Profile::draw(s, self.cfg.seed, index);
        let f = &s.failures;
        if action == "firmware/download" {
            let rate = p.last_mile_bps.min(Profile::window_cap_bps(
                s.network.tcp_window_kb,
                p.origin_rtt_ms,
            ));
            let ok = !self.rng.random_bool(f.verify_failure_rate.clamp(0.0, 1.0));
            (s.firmware.size_mb * 8e6 / rate.max(1.0), ok)
        } else {
            let ok = !self.cfg.fail.iter().any(|d| d == device)
                && !self.rng.random_bool(f.install_failure_rate.clamp(0.0, 1.0));
            (s.install.seconds.sample(&mut self.rng), ok)
        }
    }

    fn in_flight(&self, now: Instant) -> usize {
        self.devices
            .values()
            .filter(|d| d.busy_until.is_some_and(|t| t > now))
            .count()
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
        if devices.is_empty() {
            return Err("devices must not be empty".into());
        }
        if devices.len() > 5000 {
            return Err("a request holds at most 5000 devices".into());
        }
        let mut targets = Vec::new();
        for d in devices {
            let device = d
                .get("deviceId")
                .and_then(Value::as_str)
                .ok_or("device without deviceId")?;
            let type_id = d
                .get("typeId")
                .and_then(Value::as_str)
                .ok_or("device without typeId")?;
            let known = self
                .cfg
                .inventory
                .devices
                .iter()
                .any(|x| x.id == device && x.type_id.as_deref() == Some(type_id));
            if !known {
                return Err(format!("unknown device {type_id}/{device}"));
            }
            targets.push((type_id.to_string(), device.to_string()));
        }
        if action == "firmware/update" && targets.iter().any(|(t, _)| *t != targets[0].0) {
            return Err("a firmware/update request targets a single device type".into());
        }
        let now = Instant::now();
        let mut ops = Vec::new();
        for (type_id, device) in targets {
            let (secs, ok) = self.seconds(&device, &action);
            let finish = now + Duration::from_secs_f64((secs / self.cfg.speed).max(0.0));
            let seen = &mut self.seen;
            let counter = if action == "firmware/download" {
                &mut seen.download_requests
            } else {
                &mut seen.update_requests
            };
            *counter.entry(device.clone()).or_default() += 1;
            let d = self.devices.entry(device.clone()).or_default();
            if d.updated_at.is_some_and(|t| t <= now) {
                *seen.after_success.entry(device.clone()).or_default() += 1;
            }
            let status = if d.busy_until.is_some_and(|t| t > now) {
                *seen.overlapping.entry(device.clone()).or_default() += 1;
                REFUSED_BUSY
            } else if action == "firmware/update" && d.downloaded_at.is_none_or(|t| t > now) {
                REFUSED_NOT_DOWNLOADED
            } else {
                d.busy_until = Some(finish);
                if action == "firmware/download" {
                    d.downloaded_at = ok.then_some(finish);
                } else if ok {
                    d.updated_at = Some(finish);
                } else {
                    *seen.update_failures.entry(device.clone()).or_default() += 1;
                }
                if ok {
                    OK
                } else {
                    FAILED
                }
            };
            let refused = status == REFUSED_BUSY || status == REFUSED_NOT_DOWNLOADED;
            ops.push(DeviceOp {
                type_id,
                device,
                finish: if refused { now } else { finish },
                status,
            });
        }
        self.seen.max_in_flight = self.seen.max_in_flight.max(self.in_flight(now));
        let id = format!("req-{:05}", self.requests.len() + 1);
        self.requests.push(MgmtRequest {
            id: id.clone(),
            action,
            parameters: body.get("parameters").cloned().unwrap_or(json!([])),
            ops,
        });
        Ok(id)
    }

    fn device_status(&self, op: &DeviceOp) -> Value {
        let now = Instant::now();
        let (status, complete) = if now < op.finish {
            (IN_PROGRESS, false)
        } else {
            (op.status, true)
        };
        json!({ "typeId": op.type_id, "deviceId": op.device, "status": status, "complete": complete })
    }

    fn complete(r: &MgmtRequest) -> bool {
        let now = Instant::now();
        r.ops.iter().all(|o| now >= o.finish)
    }

    fn summary(r: &MgmtRequest) -> Value {
        json!({
            "id": r.id,
            "action": r.action,
            "parameters": r.parameters,
            "complete": State::complete(r),
            "status": if State::complete(r) { 1 } else { 0 },
        })
    }

    fn stats(&self) -> Value {
        let updated: Vec<&String> = self
            .devices
            .iter()
            .filter(|(_, d)| d.updated_at.is_some_and(|t| t <= Instant::now()))
            .map(|(k, _)| k)
            .collect();
        json!({
            "requests": self.requests.len(),
            "posts": self.seen.posts,
            "download_requests": self.seen.download_requests,
            "update_requests": self.seen.update_requests,
            "update_failures": self.seen.update_failures,
            "updates_after_success": self.seen.after_success,
            "overlapping_updates": self.seen.overlapping,
            "updated": updated,
            "injected": self.seen.injected,
            "max_in_flight": self.seen.max_in_flight,
            "in_flight": self.in_flight(Instant::now()),
        })
    }

    /// One page of `items` from `_bookmark` (an offset), with the next bookmark if any.
    fn page(&self, items: Vec<Value>, query: &str) -> Value {
        let start: usize = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("_bookmark="))
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        let size = self.cfg.page_size.max(1);
        let end = (start + size).min(items.len());
        let results: Vec<Value> = items
            .get(start..end)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        let mut v = json!({ "results": results, "meta": { "total_rows": items.len() } });
        if end < items.len() {
            v["bookmark"] = json!(end.to_string());
        }
        v
    }

    /// `/api/v0002/device/types/{typeId}/devices[/{deviceId}]`: register (POST), read
    /// (GET) and update (PUT, which replaces the metadata) a device.
    fn device_route(&mut self, method: &Method, segs: &[&str], body: &str) -> (u16, Value) {
        let view =
            |t: &str, d: &str, m: &Value| json!({ "typeId": t, "deviceId": d, "metadata": m });
        let parsed = || serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
        match (method, segs) {
            (Method::Post, [t]) => {
                let b = parsed();
                let Some(d) = b.get("deviceId").and_then(Value::as_str) else {
                    return (400, json!({ "message": "deviceId is required" }));
                };
                let key = (t.to_string(), d.to_string());
                if self.registry.contains_key(&key) {
                    return (409, json!({ "message": "device already exists" }));
                }
                let m = b.get("metadata").cloned().unwrap_or_else(|| json!({}));
                self.registry.insert(key, m.clone());
                (201, view(t, d, &m))
            }
            (Method::Get, [t, d]) => match self.registry.get(&(t.to_string(), d.to_string())) {
                Some(m) => (200, view(t, d, m)),
                None => (404, json!({ "message": "device not found" })),
            },
            (Method::Put, [t, d]) => {
                let key = (t.to_string(), d.to_string());
                let Some(m) = self.registry.get_mut(&key) else {
                    return (404, json!({ "message": "device not found" }));
                };
                if let Some(new) = parsed().get("metadata") {
                    *m = new.clone();
                }
                let m = m.clone();
                (200, view(t, d, &m))
            }
            _ => (404, json!({ "message": "not found" })),
        }
    }

    fn route(&mut self, method: &Method, path: &str, query: &str, body: &str) -> (u16, Value) {
        if let Some(rest) = path.strip_prefix("/api/v0002/device/types/") {
            let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            return match segs.as_slice() {
                [t, "devices"] => self.device_route(method, &[t], body),
                [t, "devices", d] => self.device_route(method, &[t, d], body),
                _ => (404, json!({ "message": "not found" })),
            };
        }
        if !path.starts_with("/api/v0002/mgmt/requests") {
            return (404, json!({ "message": "not found" }));
        }
        let segs: Vec<&str> = path
            .trim_start_matches("/api/v0002/mgmt/requests")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match (method, segs.as_slice()) {
            (Method::Post, []) => match serde_json::from_str::<Value>(body)
                .map_err(|e| e.to_string())
                .and_then(|b| self.create(&b))
            {
                Ok(id) => {
                    self.seen.posts += 1;
                    (202, json!({ "reqId": id }))
                }
                Err(m) => (400, json!({ "message": m })),
            },
            (Method::Get, []) => {
                let items = self.requests.iter().map(State::summary).collect();
                (200, self.page(items, query))
            }
            (Method::Get, [id]) => match self.requests.iter().find(|r| r.id == *id) {
                Some(r) => (200, State::summary(r)),
                None => (404, json!({ "message": "no such request" })),
            },
            (Method::Delete, [id]) => match self.requests.iter().position(|r| r.id == *id) {
                // Clears the status record; whatever the devices are doing goes on.
                Some(i) => {
                    self.requests.remove(i);
                    (204, Value::Null)
                }
                None => (404, json!({ "message": "no such request" })),
            },
            (Method::Get, [id, "deviceStatus"]) => {
                match self.requests.iter().find(|r| r.id == *id) {
                    Some(r) => {
                        let items = r.ops.iter().map(|o| self.device_status(o)).collect();
                        (200, self.page(items, query))
                    }
                    None => (404, json!({ "message": "no such request" })),
                }
            }
            _ => (404, json!({ "message": "not found" })),
        }
    }
}

fn json_response(code: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let data = if v.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(v).unwrap_or_default()
    };
    let mut r = Response::from_data(data).with_status_code(code);
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

fn respond(req: HttpRequest, fault: Option<&str>, code: u16, value: &Value) {
    match fault {
        Some("503") => {
            let _ = req.respond(json_response(503, &json!({ "message": "unavailable" })));
        }
        Some("post500") => {
            let _ = req.respond(json_response(500, &json!({ "message": "internal error" })));
        }
        Some("reset") => drop(req.into_writer()),
        Some("garbage") => {
            let _ = req.respond(Response::from_string("{\"reqId\": ").with_status_code(code));
        }
        _ => {
            let _ = req.respond(json_response(code, value));
        }
    }
}

/// Serves until the process is stopped. Prints `listening on http://127.0.0.1:PORT`.
pub fn serve(cfg: Config, port: u16) -> Result<(), String> {
    let server = super::listen(port)?;
    let seed = cfg.seed;
    let st = Arc::new(Mutex::new(State {
        cfg,
        requests: Vec::new(),
        devices: BTreeMap::new(),
        registry: BTreeMap::new(),
        rng: Pcg64::seed_from_u64(seed),
        seen: Seen::default(),
    }));
    for mut req in server.incoming_requests() {
        let url = req.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let (path, query) = (path.to_string(), query.to_string());
        let method = req.method().clone();
        let Ok(mut s) = st.lock() else {
            return Err("emulator state poisoned".into());
        };
        if path == "/_emulator/stats" {
            let _ = req.respond(json_response(200, &s.stats()));
            continue;
        }
        let authorised = req
            .headers()
            .iter()
            .any(|h| h.field.equiv("Authorization") && h.value.as_str() == s.cfg.auth);
        if !authorised {
            let _ = req.respond(json_response(401, &json!({ "message": "unauthorized" })));
            continue;
        }
        // Fault injection: one draw per request; post* faults strike POSTs only.
        let u: f64 = s.rng.random();
        let fault = super::draw_fault(u, &s.cfg.faults)
            .filter(|f| !f.starts_with("post") || method == Method::Post);
        if let Some(f) = &fault {
            *s.seen.injected.entry(f.clone()).or_default() += 1;
        }
        let mut body = String::new();
        let _ = req.as_reader().read_to_string(&mut body);
        match fault.as_deref() {
            Some("429") => {
                let _ = req.respond(json_response(429, &json!({ "message": "rate limited" })));
            }
            Some("500") => {
                let _ = req.respond(json_response(500, &json!({ "message": "internal error" })));
            }
            // The platform acts only after the client has given up.
            Some("slow") => {
                drop(s);
                let st = st.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(SLOW);
                    let answer = st
                        .lock()
                        .map(|mut s| s.route(&method, &path, &query, &body));
                    if let Ok((code, value)) = answer {
                        respond(req, None, code, &value);
                    }
                });
            }
            // The platform acts at once, and answers after the client has given up.
            Some("postslow") => {
                let (code, value) = s.route(&method, &path, &query, &body);
                drop(s);
                std::thread::spawn(move || {
                    std::thread::sleep(SLOW);
                    respond(req, None, code, &value);
                });
            }
            f => {
                let (code, value) = s.route(&method, &path, &query, &body);
                drop(s);
                respond(req, f, code, &value);
            }
        }
    }
    Ok(())
}
