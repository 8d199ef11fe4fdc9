//! The watson-iot backend: the seed's v0002 device-management API. An update is two
//! requests per batch, `firmware/download` then `firmware/update`; progress comes from
//! `deviceStatus` (status 0 success, 1 in progress, anything else with complete = failure).

use base64::Engine as _;
use serde_json::{json, Value};

use super::backend::{Backend, BackendError, DeviceStatus, OpState};
use super::http::{Http, Outcome};
use super::inventory::Device;

pub struct Watson {
    base: String,
    auth: String,
    http: Http,
    version: String,
    uri: String,
}

impl Watson {
    /// Credentials come from WIOTP_API_KEY and WIOTP_API_TOKEN; they go into the
    /// Authorization header and nowhere else.
    pub fn from_env(
        endpoint: &str,
        version: &str,
        uri: &str,
        time_scale: f64,
    ) -> Result<Watson, BackendError> {
        let key = std::env::var("WIOTP_API_KEY")
            .map_err(|_| BackendError("WIOTP_API_KEY is not set".into()))?;
        let token = std::env::var("WIOTP_API_TOKEN")
            .map_err(|_| BackendError("WIOTP_API_TOKEN is not set".into()))?;
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

    fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("Authorization".into(), self.auth.clone()),
            ("Accept".into(), "application/json".into()),
        ]
    }

    fn action(phase: &str) -> &'static str {
        if phase == "download" {
            "firmware/download"
        } else {
            "firmware/update"
        }
    }

    fn body(&self, phase: &str, devices: &[&Device]) -> Value {
        let parameters = if phase == "download" {
            json!([
                { "name": "uri", "value": self.uri },
                { "name": "name", "value": format!("stagger-{}", self.version) },
                { "name": "version", "value": self.version },
                { "name": "verifier", "value": "" },
            ])
        } else {
            json!([{ "name": "version", "value": self.version }])
        };
        let devices: Vec<Value> = devices
            .iter()
            .map(|d| json!({ "typeId": d.type_id.clone().unwrap_or_default(), "deviceId": d.id }))
            .collect();
        json!({ "action": Self::action(phase), "parameters": parameters, "devices": devices })
    }
}

impl Backend for Watson {
    fn phases(&self) -> &'static [&'static str] {
        &["download", "update"]
    }

    fn submit(&mut self, phase: &str, devices: &[(&Device, u32)]) -> Result<String, BackendError> {
        let devices: Vec<&Device> = devices.iter().map(|(d, _)| *d).collect();
        let url = format!("{}/api/v0002/mgmt/requests", self.base);
        let body = self.body(phase, &devices);
        let mut last = String::new();
        for n in 1..=self.http.max_tries {
            match self.http.once("POST", &url, &self.headers(), Some(&body)) {
                Outcome::Ok(v) => match v.get("reqId").and_then(Value::as_str) {
                    Some(id) => return Ok(id.to_string()),
                    None => last = "202 without reqId".into(),
                },
                Outcome::Fatal(m) => return Err(BackendError(m)),
                Outcome::Retry(m) => last = m,
                Outcome::Ambiguous(m) => {
                    // The platform may have created it: adopt rather than trigger twice.
                    if let Some(first) = devices.first() {
                        if let Some(found) = self.find(phase, first)? {
                            return Ok(found);
                        }
                    }
                    last = m;
                }
            }
            self.http.backoff(n);
        }
        Err(BackendError(format!(
            "could not create a {} request: {last}",
            Self::action(phase)
        )))
    }

    fn find(&mut self, phase: &str, device: &Device) -> Result<Option<String>, BackendError> {
        let url = format!("{}/api/v0002/mgmt/requests", self.base);
        let list = self.http.get(&url, &self.headers())?;
        let empty = Vec::new();
        let results = list
            .get("results")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for r in results.iter().rev() {
            let action = r.get("action").and_then(Value::as_str).unwrap_or("");
            let ours = r
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p.get("name") == Some(&json!("version"))
                            && p.get("value") == Some(&json!(self.version))
                    })
                });
            let Some(id) = r
                .get("id")
                .or_else(|| r.get("reqId"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            if action != Self::action(phase) || !ours {
                continue;
            }
            if self.status(id)?.iter().any(|s| s.device == device.id) {
                return Ok(Some(id.to_string()));
            }
        }
        Ok(None)
    }

    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, BackendError> {
        let url = format!(
            "{}/api/v0002/mgmt/requests/{reference}/deviceStatus",
            self.base
        );
        let v = self.http.get(&url, &self.headers())?;
        let results = v
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| BackendError(format!("{url}: no results[] in the answer")))?;
        Ok(results
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

    fn cancel(&mut self, reference: &str) -> Result<(), BackendError> {
        let url = format!("{}/api/v0002/mgmt/requests/{reference}/cancel", self.base);
        for n in 1..=self.http.max_tries {
            match self
                .http
                .once("POST", &url, &self.headers(), Some(&json!({})))
            {
                Outcome::Ok(_) => return Ok(()),
                Outcome::Fatal(m) => return Err(BackendError(m)),
                // Cancelling twice is harmless, so an ambiguous failure is simply retried.
                Outcome::Retry(_) | Outcome::Ambiguous(_) => self.http.backoff(n),
            }
        }
        Err(BackendError(format!(
            "could not cancel request {reference}"
        )))
    }
}
