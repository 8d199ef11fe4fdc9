//! The watson-iot backend: IBM Watson IoT Platform v0002 device management, as documented.
//! An update is two requests, `firmware/download` then `firmware/update`; progress comes
//! from `deviceStatus` (status 0 success, 1 in progress, any other with `complete` failure).
//! Lists are paged: every list follows its bookmark to the last page. There is no cancel:
//! `DELETE` only clears a request's status record, so a halt stops issuing and observes.
//! Each request carries the driver's intent id as a parameter, so that after an ambiguous
//! failure the request can be found by what it carries, never guessed.

use base64::Engine as _;
use serde_json::{json, Value};

use super::backend::{published_facts, Backend, DeviceStatus, OpState, PlatformOp};
use super::http::{encode_query, CallError, Http};
use super::inventory::Device;
use super::signals::Signal;
use crate::engine::Facts;

/// The request parameter that carries the driver's intent id.
pub const INTENT_PARAM: &str = "stagger_intent";
const ACTIONS: [&str; 2] = ["firmware/download", "firmware/update"];
/// The API's limit on devices per request.
pub const MAX_DEVICES: usize = 5000;

pub struct Watson {
    base: String,
    auth: String,
    http: Http,
    version: String,
    uri: String,
}

impl Watson {
    pub const SIGNALS: &'static [Signal] = &[
        Signal::Prechecks,
        Signal::Throttling,
        // firmware/download completes before firmware/update is sent.
        Signal::DownloadProgress,
    ];

    /// Credentials come from WIOTP_API_KEY and WIOTP_API_TOKEN; they go into the
    /// Authorization header and nowhere else.
    pub fn from_env(
        endpoint: &str,
        version: &str,
        uri: &str,
        time_scale: f64,
    ) -> Result<Watson, String> {
        let key = std::env::var("WIOTP_API_KEY").map_err(|_| "WIOTP_API_KEY is not set")?;
        let token = std::env::var("WIOTP_API_TOKEN").map_err(|_| "WIOTP_API_TOKEN is not set")?;
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:{token}"))
        );
        Ok(Watson {
            base: endpoint.trim_end_matches('/').to_string(),
            auth,
            http: Http::new(time_scale),
            version: version.into(),
            uri: uri.into(),
        })
    }

    fn headers(&self, with_body: bool) -> Vec<(String, String)> {
        let mut h = vec![
            ("Authorization".into(), self.auth.clone()),
            ("Accept".into(), "application/json".into()),
        ];
        if with_body {
            h.push(("Content-Type".into(), "application/json".into()));
        }
        h
    }

    fn get(&self, path_and_query: &str) -> Result<Value, CallError> {
        let url = format!("{}{path_and_query}", self.base);
        self.http.once("GET", &url, &self.headers(false), None)
    }

    /// Every element of a paged list: follows the bookmark until a page has none.
    fn list_all(&self, path: &str) -> Result<Vec<Value>, CallError> {
        let mut out = Vec::new();
        let mut bookmark: Option<String> = None;
        for _ in 0..100_000 {
            let url = match &bookmark {
                Some(b) => format!("{path}?_bookmark={}", encode_query(b)),
                None => path.to_string(),
            };
            let page = self.get(&url)?;
            if let Some(results) = page.get("results").and_then(Value::as_array) {
                out.extend(results.iter().cloned());
            } else {
                return Err(CallError::Transient(format!("GET {path}: no results[]")));
            }
            let next = page
                .get("bookmark")
                .or_else(|| page.get("_bookmark"))
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty())
                .map(str::to_string);
            if next.is_none() || next == bookmark {
                return Ok(out);
            }
            bookmark = next;
        }
        Err(CallError::Transient(format!("GET {path}: too many pages")))
    }

    fn parameters(&self, phase: usize, intent: &str) -> Value {
        if phase == 0 {
            json!([
                { "name": "uri", "value": self.uri },
                { "name": "name", "value": format!("stagger-{}", self.version) },
                { "name": "version", "value": self.version },
                { "name": "verifier", "value": "" },
                { "name": INTENT_PARAM, "value": intent },
            ])
        } else {
            json!([
                { "name": "version", "value": self.version },
                { "name": INTENT_PARAM, "value": intent },
            ])
        }
    }

    /// A listed request's (phase, intent) when it is for this firmware.
    fn ours(&self, request: &Value) -> Result<Option<(usize, Option<String>, String)>, CallError> {
        let Some(id) = request
            .get("id")
            .or_else(|| request.get("reqId"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let action = request.get("action").and_then(Value::as_str).unwrap_or("");
        let Some(phase) = ACTIONS.iter().position(|a| *a == action) else {
            return Ok(None);
        };
        // A list entry may leave the parameters out; the request's own record has them.
        let params = match request.get("parameters") {
            Some(p) => p.clone(),
            None => self
                .get(&format!("/api/v0002/mgmt/requests/{id}"))?
                .get("parameters")
                .cloned()
                .unwrap_or(Value::Null),
        };
        let param = |name: &str| {
            params.as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                    .and_then(|p| p.get("value"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        };
        if param("version").as_deref() != Some(self.version.as_str()) {
            return Ok(None);
        }
        if phase == 0 && param("uri").as_deref() != Some(self.uri.as_str()) {
            return Ok(None);
        }
        Ok(Some((phase, param(INTENT_PARAM), id.to_string())))
    }
}

impl Backend for Watson {
    fn phases(&self) -> &'static [&'static str] {
        &["download", "update"]
    }

    fn max_batch(&self) -> usize {
        MAX_DEVICES
    }

    fn batch_key(&self, device: &Device) -> String {
        device.type_id.clone().unwrap_or_default()
    }

    /// Pre-check facts from each device's `metadata.stagger` and throttling (429); no
    /// health signal, and no cancel.
    fn signals(&self) -> &'static [Signal] {
        Self::SIGNALS
    }

    fn ping(&mut self) -> Result<(), CallError> {
        self.get("/api/v0002/mgmt/requests").map(|_| ())
    }

    fn exists(&mut self, device: &Device) -> Result<bool, CallError> {
        match self.get(&device_path(device)) {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn facts(&mut self, device: &Device) -> Result<Facts, CallError> {
        match self.get(&device_path(device)) {
            Ok(v) => Ok(published_facts(v.pointer("/metadata/stagger"))),
            // Not registered, or no metadata: nothing published, and unknown never blocks.
            Err(CallError::NotFound(_)) => Ok(Facts::unknown()),
            Err(e) => Err(e),
        }
    }

    fn submit(
        &mut self,
        phase: usize,
        intent: &str,
        devices: &[&Device],
    ) -> Result<String, CallError> {
        let devices: Vec<Value> = devices
            .iter()
            .map(|d| json!({ "typeId": d.type_id.clone().unwrap_or_default(), "deviceId": d.id }))
            .collect();
        let body = json!({
            "action": ACTIONS[phase],
            "parameters": self.parameters(phase, intent),
            "devices": devices,
        });
        let url = format!("{}/api/v0002/mgmt/requests", self.base);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let v = self
            .http
            .once("POST", &url, &self.headers(true), Some(&bytes))?;
        v.get("reqId")
            .and_then(Value::as_str)
            .map(str::to_string)
            // Accepted without saying under which id: it may exist, so look it up.
            .ok_or_else(|| CallError::Ambiguous(format!("POST {url}: 202 without reqId")))
    }

    fn survey(&mut self) -> Result<Vec<PlatformOp>, CallError> {
        let mut ops = Vec::new();
        for r in self.list_all("/api/v0002/mgmt/requests")? {
            let Some((phase, intent, id)) = self.ours(&r)? else {
                continue;
            };
            let devices = self.status(&id)?;
            ops.push(PlatformOp {
                reference: id,
                phase,
                intent,
                devices,
            });
        }
        Ok(ops)
    }

    fn lookup(&mut self, phase: usize, intent: &str) -> Result<Option<String>, CallError> {
        for r in self.list_all("/api/v0002/mgmt/requests")? {
            if let Some((p, Some(i), id)) = self.ours(&r)? {
                if p == phase && i == intent {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }

    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, CallError> {
        let path = format!(
            "/api/v0002/mgmt/requests/{}/deviceStatus",
            encode_query(reference)
        );
        Ok(self
            .list_all(&path)?
            .iter()
            .filter_map(|r| {
                let device = r.get("deviceId")?.as_str()?.to_string();
                let status = r.get("status").and_then(Value::as_i64).unwrap_or(1);
                let complete = r.get("complete").and_then(Value::as_bool).unwrap_or(false);
                let state = match (status, complete) {
                    (0, _) => OpState::Succeeded,
                    (1, _) | (_, false) => OpState::InProgress,
                    (s, true) => OpState::Failed(format!("status {s}")),
                };
                Some(DeviceStatus { device, state })
            })
            .collect())
    }

    fn cancel(&mut self, reference: &str) -> Result<(), CallError> {
        Err(CallError::Invalid(format!(
            "Watson IoT v0002 has no cancel for request {reference}"
        )))
    }
}

/// The documented path of one device, under its type.
fn device_path(device: &Device) -> String {
    format!(
        "/api/v0002/device/types/{}/devices/{}",
        encode_query(device.type_id.as_deref().unwrap_or_default()),
        encode_query(&device.id)
    )
}
