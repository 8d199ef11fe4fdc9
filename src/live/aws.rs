//! The aws-iot-jobs backend: AWS IoT Jobs over REST with SigV4 signing (aws-sigv4 + ureq).
//! A batch becomes one job targeting at most 100 things, with the plan's abort and timeout
//! configs as defence in depth. A job's id is derived from everything that defines it (the
//! driver's intent: firmware, phase, targets, attempts), and an existing job is adopted only
//! once its document is checked to be the one intended.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};

use super::backend::{Backend, DeviceStatus, OpState, PlatformOp};
use super::http::{encode_query, CallError, Http};
use super::inventory::Device;
use super::signals::Signal;
use crate::engine::{Facts, Policy};

/// A SigV4-signing JSON client for one AWS endpoint.
pub struct Signed {
    pub base: String,
    region: String,
    creds: Credentials,
    pub http: Http,
}

impl Signed {
    /// Credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
    /// and AWS_REGION (or AWS_DEFAULT_REGION). They are used to sign and never printed.
    pub fn from_env(endpoint: &str, time_scale: f64) -> Result<Signed, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let akid = var("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID is not set")?;
        let secret = var("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY is not set")?;
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or("AWS_REGION is not set")?;
        let creds = Credentials::new(akid, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        Ok(Signed {
            base: endpoint.trim_end_matches('/').to_string(),
            region,
            creds,
            http: Http::new(time_scale),
        })
    }

    /// The headers to send: exactly those signed (host is set by the HTTP client from the
    /// URL; content-type only when there is a body), plus the signature.
    fn headers(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        service: &str,
    ) -> Result<Vec<(String, String)>, CallError> {
        let identity = self.creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| CallError::Invalid(format!("signing: {e}")))?
            .into();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        let mut sent: Vec<(&str, &str)> = vec![("host", host.as_str())];
        if body.is_some() {
            sent.push(("content-type", "application/json"));
        }
        let req = SignableRequest::new(
            method,
            url,
            sent.iter().copied(),
            SignableBody::Bytes(body.unwrap_or(b"")),
        )
        .map_err(|e| CallError::Invalid(format!("signing: {e}")))?;
        let (instructions, _) = sign(req, &params)
            .map_err(|e| CallError::Invalid(format!("signing: {e}")))?
            .into_parts();
        let mut headers: Vec<(String, String)> = sent
            .iter()
            .filter(|(k, _)| *k != "host")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.extend(
            instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Ok(headers)
    }

    /// One signed try (signed afresh each time: the signature covers the time).
    pub fn once(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        service: &str,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let headers = self.headers(method, &url, bytes.as_deref(), service)?;
        self.http.once(method, &url, &headers, bytes.as_deref())
    }

    /// A read or an idempotent write, tried up to 8 times with short pauses. For tools and
    /// tests only: the rollout driver never blocks on retries.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        service: &str,
    ) -> Result<Value, CallError> {
        let mut last = None;
        for n in 0..8u32 {
            match self.once(method, path, body, service) {
                Ok(v) => return Ok(v),
                Err(
                    e @ (CallError::Throttled(_)
                    | CallError::Transient(_)
                    | CallError::Unreachable(_)
                    | CallError::Ambiguous(_)),
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(100 << n.min(4)));
        }
        Err(last.unwrap_or_else(|| CallError::Transient("no answer".into())))
    }
}

pub struct AwsJobs {
    client: Signed,
    /// The data plane (device shadows), signed as `iotdata`.
    data: Signed,
    version: String,
    uri: String,
    /// `stagger-<firmware digest>-`: every job of this rollout's firmware starts with it.
    prefix: String,
    arns: BTreeMap<String, String>,
    abort_pct: Option<f64>,
    timeout_min: u64,
    maintenance: Option<crate::engine::maintenance::Maintenance>,
    freshness: Freshness,
}

/// AWS's limit on thing targets per job.
pub const MAX_TARGETS: usize = 100;

/// `stagger-<digest of version and URI>-`: every job of one firmware starts with it, whatever
/// the version's length or characters.
pub fn job_prefix(version: &str, uri: &str) -> String {
    let fw = crate::live::journal::digest(&[version.as_bytes(), uri.as_bytes()]);
    format!("stagger-{}-", &fw[..12])
}

/// The job id of an intent: at most 64 characters of `[a-zA-Z0-9_-]`.
pub fn job_id(prefix: &str, intent: &str) -> String {
    let safe: String = intent
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64usize.saturating_sub(prefix.len()))
        .collect();
    format!("{prefix}{safe}")
}

/// Pre-check facts from a classic shadow's `state.reported`; an absent field is unknown.
pub fn facts_of_shadow(doc: &Value, freshness: Freshness) -> Facts {
    let mut facts = crate::live::backend::published_facts(doc.pointer("/state/reported"));
    // An agent that stopped reporting is offline: its shadow keeps the last word forever.
    // Ages are measured on the platform's clock (the response's `timestamp` against the
    // newest `metadata.reported` timestamp), so our own clock's skew does not count.
    let newest = newest_timestamp(doc.pointer("/metadata/reported"));
    let now = doc.get("timestamp").and_then(Value::as_f64);
    if let (Some(newest), Some(now)) = (newest, now) {
        if (now - newest) * freshness.time_scale > freshness.max_age_s {
            facts.online = false;
        }
    }
    facts
}

/// How old a shadow's reported facts may be before its device counts as offline.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// In plan seconds.
    pub max_age_s: f64,
    pub time_scale: f64,
}

/// The newest `timestamp` leaf of a shadow's metadata (epoch seconds).
fn newest_timestamp(meta: Option<&Value>) -> Option<f64> {
    match meta? {
        Value::Object(m) => m
            .iter()
            .filter_map(|(k, v)| {
                if k == "timestamp" {
                    v.as_f64()
                } else {
                    newest_timestamp(Some(v))
                }
            })
            .reduce(f64::max),
        _ => None,
    }
}

fn thing_of_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl AwsJobs {
    pub const SIGNALS: &'static [Signal] = &[
        Signal::Prechecks,
        Signal::Health,
        Signal::Throttling,
        Signal::Cancel,
    ];

    pub fn from_env(
        endpoint: &str,
        data_endpoint: &str,
        version: &str,
        uri: &str,
        time_scale: f64,
        facts_max_age_s: f64,
        policy: &Policy,
    ) -> Result<AwsJobs, String> {
        let timeout_min = policy.op_timeout.map_or(60.0, |t| t.secs() / 60.0) / time_scale;
        Ok(AwsJobs {
            client: Signed::from_env(endpoint, time_scale)?,
            data: Signed::from_env(data_endpoint, time_scale)?,
            version: version.into(),
            uri: uri.into(),
            prefix: job_prefix(version, uri),
            arns: BTreeMap::new(),
            // Defence in depth: the job aborts itself past the failure rate the plan rolls back at.
            abort_pct: policy
                .rollback_below
                .map(|b| (((1.0 - b) * 100.0).clamp(1.0, 100.0) * 100.0).round() / 100.0),
            // AWS accepts 1 to 10,080 minutes.
            timeout_min: (timeout_min.ceil() as u64).clamp(1, 10_080),
            maintenance: policy.maintenance.clone(),
            freshness: Freshness {
                max_age_s: facts_max_age_s,
                time_scale,
            },
        })
    }

    /// The job's `schedulingConfig.maintenanceWindows` for a region (defence in depth: AWS
    /// itself rolls the job out only inside them). None when the region is unrestricted,
    /// or when a window is AWS's maximum of 1,430 minutes or longer (open all day anyway).
    pub fn maintenance_windows(&self, region: &str) -> Option<Value> {
        let m = self.maintenance.as_ref()?;
        let mut out = Vec::new();
        for w in &m.windows {
            if !w.regions.is_empty() && !w.regions.iter().any(|r| r == region) {
                continue;
            }
            let minutes = w.duration_ms.div_ceil(60_000);
            if minutes >= 1430 {
                return None;
            }
            let (h, min) = (w.open_ms / 3_600_000, (w.open_ms / 60_000) % 60);
            out.push(json!({
                "startTime": format!("cron({min} {h} * * ? *)"),
                "durationInMinutes": minutes.max(1),
            }));
        }
        (!out.is_empty()).then_some(Value::Array(out))
    }

    pub fn job_id(&self, intent: &str) -> String {
        job_id(&self.prefix, intent)
    }

    fn document(&self) -> String {
        json!({ "operation": "firmware-update", "version": self.version, "uri": self.uri })
            .to_string()
    }

    fn arn(&mut self, thing: &str) -> Result<String, CallError> {
        if let Some(a) = self.arns.get(thing) {
            return Ok(a.clone());
        }
        let v = self.client.once(
            "GET",
            &format!("/things/{}", encode_query(thing)),
            None,
            "iot",
        )?;
        let arn = v
            .get("thingArn")
            .and_then(Value::as_str)
            .ok_or_else(|| CallError::Invalid(format!("thing {thing}: no thingArn")))?
            .to_string();
        self.arns.insert(thing.to_string(), arn.clone());
        Ok(arn)
    }

    /// An existing job of that id is ours only if it carries the document intended.
    fn adopt_existing(&mut self, id: &str) -> Result<String, CallError> {
        let v = self
            .client
            .once("GET", &format!("/jobs/{id}/job-document"), None, "iot")?;
        let found = v.get("document").and_then(Value::as_str).unwrap_or("");
        let same = serde_json::from_str::<Value>(found).ok()
            == serde_json::from_str::<Value>(&self.document()).ok();
        if same {
            Ok(id.to_string())
        } else {
            Err(CallError::Invalid(format!(
                "job {id} already exists with another document; it was not created by this rollout's firmware, so it is not adopted"
            )))
        }
    }
}

impl Backend for AwsJobs {
    fn phases(&self) -> &'static [&'static str] {
        &["job"]
    }

    fn max_batch(&self) -> usize {
        MAX_TARGETS
    }

    /// Devices share a job when they share maintenance windows.
    fn batch_key(&self, device: &Device) -> String {
        self.maintenance_windows(&device.region)
            .map(|w| w.to_string())
            .unwrap_or_default()
    }

    /// Pre-check facts from classic shadows, health from failed executions' status details,
    /// throttling by error type, and cancel (CancelJob, never forced).
    fn signals(&self) -> &'static [Signal] {
        Self::SIGNALS
    }

    fn submit(
        &mut self,
        _phase: usize,
        intent: &str,
        devices: &[&Device],
    ) -> Result<String, CallError> {
        let id = self.job_id(intent);
        let mut targets = Vec::new();
        for d in devices {
            targets.push(self.arn(&d.id)?);
        }
        let mut body = json!({
            "targets": targets,
            "document": self.document(),
            "description": format!("stagger firmware {}", self.version),
            "targetSelection": "SNAPSHOT",
            "timeoutConfig": { "inProgressTimeoutInMinutes": self.timeout_min },
        });
        if let Some(w) = devices
            .first()
            .and_then(|d| self.maintenance_windows(&d.region))
        {
            body["schedulingConfig"] = json!({ "maintenanceWindows": w });
        }
        if let Some(pct) = self.abort_pct {
            // Judge the job once a quarter of it has run, not only when all of it has.
            let min_executed = devices.len().div_ceil(4).max(1);
            body["abortConfig"] = json!({ "criteriaList": [{
                "failureType": "FAILED", "action": "CANCEL",
                "thresholdPercentage": pct, "minNumberOfExecutedThings": min_executed
            }]});
        }
        match self
            .client
            .once("PUT", &format!("/jobs/{id}"), Some(&body), "iot")
        {
            Ok(_) => Ok(id),
            // The same id exists: an earlier try created it, if its document is ours.
            Err(CallError::Conflict(_)) => self.adopt_existing(&id),
            Err(e) => Err(e),
        }
    }

    fn survey(&mut self) -> Result<Vec<PlatformOp>, CallError> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(t) => format!("/jobs?maxResults=250&nextToken={}", encode_query(t)),
                None => "/jobs?maxResults=250".to_string(),
            };
            let v = self.client.once("GET", &path, None, "iot")?;
            for j in v
                .get("jobs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = j.get("jobId").and_then(Value::as_str) {
                    if id.starts_with(&self.prefix) {
                        ids.push(id.to_string());
                    }
                }
            }
            token = v.get("nextToken").and_then(Value::as_str).map(String::from);
            if token.is_none() {
                break;
            }
        }
        let mut ops = Vec::new();
        for id in ids {
            let devices = self.status(&id)?;
            ops.push(PlatformOp {
                intent: Some(id[self.prefix.len()..].to_string()),
                reference: id,
                phase: 0,
                devices,
            });
        }
        Ok(ops)
    }

    fn lookup(&mut self, _phase: usize, intent: &str) -> Result<Option<String>, CallError> {
        let id = self.job_id(intent);
        match self.client.once("GET", &format!("/jobs/{id}"), None, "iot") {
            Ok(_) => self.adopt_existing(&id).map(Some),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, CallError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(t) => format!(
                    "/jobs/{reference}/things?maxResults=250&nextToken={}",
                    encode_query(t)
                ),
                None => format!("/jobs/{reference}/things?maxResults=250"),
            };
            let v = self.client.once("GET", &path, None, "iot")?;
            for s in v
                .get("executionSummaries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(arn) = s.get("thingArn").and_then(Value::as_str) else {
                    continue;
                };
                let status = s
                    .pointer("/jobExecutionSummary/status")
                    .and_then(Value::as_str)
                    .unwrap_or("QUEUED");
                let state = match status {
                    "SUCCEEDED" => OpState::Succeeded,
                    "QUEUED" => OpState::Queued,
                    "IN_PROGRESS" => OpState::InProgress,
                    other => OpState::Failed(other.to_string()),
                };
                out.push(DeviceStatus {
                    device: thing_of_arn(arn).to_string(),
                    state,
                });
            }
            token = v.get("nextToken").and_then(Value::as_str).map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    fn facts(&mut self, device: &Device) -> Result<Facts, CallError> {
        let path = format!("/things/{}/shadow", encode_query(&device.id));
        let doc = match self.data.once("GET", &path, None, "iotdata") {
            Ok(v) => v,
            // No shadow: the thing publishes nothing, and unknown facts never block.
            Err(CallError::NotFound(_)) => return Ok(Facts::unknown()),
            Err(e) => return Err(e),
        };
        Ok(facts_of_shadow(&doc, self.freshness))
    }

    fn ping(&mut self) -> Result<(), CallError> {
        self.client
            .once("GET", "/jobs?maxResults=1", None, "iot")
            .map(|_| ())
    }

    fn exists(&mut self, device: &Device) -> Result<bool, CallError> {
        let path = format!("/things/{}", encode_query(&device.id));
        match self.client.once("GET", &path, None, "iot") {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn cancel_queued(&mut self, reference: &str, device: &Device) -> Result<(), CallError> {
        // CancelJobExecution, not forced: AWS refuses it once the device has begun.
        let path = format!(
            "/things/{}/jobs/{reference}/cancel",
            encode_query(&device.id)
        );
        let body = json!({ "statusDetails": { "stagger": "not begun within the queue timeout" } });
        match self.client.once("PUT", &path, Some(&body), "iot") {
            Ok(_) => Ok(()),
            // Begun meanwhile (it ends by its own timeout), or already over.
            Err(CallError::Conflict(_)) | Err(CallError::Invalid(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn health_failed(&mut self, reference: &str, device: &Device) -> Result<bool, CallError> {
        let path = format!("/things/{}/jobs/{reference}", encode_query(&device.id));
        let v = self.client.once("GET", &path, None, "iot")?;
        let health = v
            .pointer("/execution/statusDetails/detailsMap/health")
            .and_then(Value::as_str);
        Ok(health == Some("fail"))
    }

    fn cancel(&mut self, reference: &str) -> Result<(), CallError> {
        // Not forced: queued executions stop, a device in the middle of flashing finishes.
        let body = json!({ "reasonCode": "STAGGER_HALT", "comment": "stagger halted the rollout on a safety rule" });
        match self.client.once(
            "PUT",
            &format!("/jobs/{reference}/cancel"),
            Some(&body),
            "iot",
        ) {
            Ok(_) => Ok(()),
            // Already completed or cancelled: nothing left to stop.
            Err(CallError::Conflict(_)) | Err(CallError::Invalid(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_valid_for_any_version_and_change_with_the_uri() {
        let intent = "0123456789abcdef01234567";
        for len in 1..=200 {
            let version: String = "1.409.0-rc+build".chars().cycle().take(len).collect();
            let id = job_id(&job_prefix(&version, "https://fw/a.bin"), intent);
            assert!(id.len() <= 64, "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{id}"
            );
            assert!(id.ends_with(intent), "the whole intent is kept: {id}");
        }
        assert_ne!(
            job_prefix("1.409.0", "https://fw/a.bin"),
            job_prefix("1.409.0", "https://fw/b.bin"),
            "a fixed URI is another job, never the stale one"
        );
    }

    const FRESH: Freshness = Freshness {
        max_age_s: 1800.0,
        time_scale: 1.0,
    };

    #[test]
    fn a_shadow_nobody_updated_for_longer_than_the_limit_is_offline() {
        let doc = |reported_at: u64, now: u64| {
            serde_json::json!({
                "state": { "reported": { "battery_pct": 90, "net": { "rssi": -60 } } },
                "metadata": { "reported": {
                    "battery_pct": { "timestamp": reported_at - 50 },
                    "net": { "rssi": { "timestamp": reported_at } } } },
                "timestamp": now,
            })
        };
        let t = 1_700_000_000;
        // The newest field counts, on the platform's clock.
        assert!(facts_of_shadow(&doc(t, t + 1800), FRESH).online);
        let stale = facts_of_shadow(&doc(t, t + 1801), FRESH);
        assert!(!stale.online);
        assert_eq!(stale.battery_pct, Some(90.0));
        // A rehearsal's ages are in wall seconds: 3 s at 600x is 1,800 plan seconds.
        let scaled = Freshness {
            max_age_s: 1800.0,
            time_scale: 600.0,
        };
        assert!(facts_of_shadow(&doc(t, t + 3), scaled).online);
        assert!(!facts_of_shadow(&doc(t, t + 4), scaled).online);
    }

    #[test]
    fn shadow_facts_are_read_and_absent_fields_unknown() {
        let doc = serde_json::json!({ "state": { "reported": {
            "battery_pct": 10, "busy": true, "link_stable_s": 30.5, "disk_free_mb": 800 } } });
        let f = facts_of_shadow(&doc, FRESH);
        assert!(f.online, "no metadata: freshness unknown, never blocks");
        assert_eq!(f.battery_pct, Some(10.0));
        assert_eq!(f.busy, Some(true));
        assert_eq!(f.disk_mb, Some(800.0));
        assert_eq!(f.cpu_pct, None);
        assert_eq!(f.stable_for, Some(crate::time::Time(30_500)));
    }
}
