//! The aws-iot-jobs backend: AWS IoT Jobs over REST with SigV4 signing (aws-sigv4 + ureq).
//! A batch becomes one job targeting its things, with the plan's abort and timeout configs
//! as defence in depth. Job ids are derived from (firmware, devices, attempts), so a job
//! re-created after a crash is found, not duplicated.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};

use super::backend::{Backend, BackendError, DeviceStatus, OpState};
use super::http::{Http, Outcome};
use super::inventory::Device;
use crate::engine::Policy;

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
    pub fn from_env(endpoint: &str, time_scale: f64) -> Result<Signed, BackendError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let akid = var("AWS_ACCESS_KEY_ID")
            .ok_or_else(|| BackendError("AWS_ACCESS_KEY_ID is not set".into()))?;
        let secret = var("AWS_SECRET_ACCESS_KEY")
            .ok_or_else(|| BackendError("AWS_SECRET_ACCESS_KEY is not set".into()))?;
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| BackendError("AWS_REGION is not set".into()))?;
        let creds = Credentials::new(akid, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        Ok(Signed {
            base: endpoint.trim_end_matches('/').to_string(),
            region,
            creds,
            http: Http::new(time_scale),
        })
    }

    fn headers(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
        service: &str,
    ) -> Result<Vec<(String, String)>, BackendError> {
        let identity = self.creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| BackendError(format!("signing: {e}")))?
            .into();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        let base = [
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ];
        let req =
            SignableRequest::new(method, url, base.iter().copied(), SignableBody::Bytes(body))
                .map_err(|e| BackendError(format!("signing: {e}")))?;
        let (instructions, _) = sign(req, &params)
            .map_err(|e| BackendError(format!("signing: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// One signed try (signed afresh each time: the signature covers the time).
    pub fn once(&self, method: &str, path: &str, body: Option<&Value>, service: &str) -> Outcome {
        let url = format!("{}{path}", self.base);
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        match self.headers(method, &url, bytes.as_deref().unwrap_or(b""), service) {
            Ok(h) => self.http.once_bytes(method, &url, &h, bytes.as_deref()),
            Err(e) => Outcome::Fatal(e.0),
        }
    }

    /// A request retried with backoff on throttling, 5xx and transport errors. Only use it
    /// for idempotent calls.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        service: &str,
    ) -> Result<Value, BackendError> {
        let mut last = String::new();
        for n in 1..=self.http.max_tries {
            match self.once(method, path, body, service) {
                Outcome::Ok(v) => return Ok(v),
                Outcome::Fatal(m) => return Err(BackendError(m)),
                Outcome::Retry(m) | Outcome::Ambiguous(m) => last = m,
            }
            self.http.backoff(n);
        }
        Err(BackendError(format!(
            "gave up after {} tries: {last}",
            self.http.max_tries
        )))
    }
}

pub struct AwsJobs {
    client: Signed,
    version: String,
    uri: String,
    arns: BTreeMap<String, String>,
    abort_pct: Option<f64>,
    timeout_min: u64,
}

fn thing_of_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl AwsJobs {
    pub fn from_env(
        endpoint: &str,
        version: &str,
        uri: &str,
        time_scale: f64,
        policy: &Policy,
    ) -> Result<AwsJobs, BackendError> {
        let timeout_min = policy.op_timeout.map_or(60.0, |t| t.secs() / 60.0) / time_scale;
        Ok(AwsJobs {
            client: Signed::from_env(endpoint, time_scale)?,
            version: version.into(),
            uri: uri.into(),
            arns: BTreeMap::new(),
            // Defence in depth: the job aborts itself past the failure rate the plan rolls back at.
            abort_pct: policy
                .rollback_below
                .map(|b| (((1.0 - b) * 100.0).clamp(1.0, 100.0) * 100.0).round() / 100.0),
            timeout_min: timeout_min.ceil().max(1.0) as u64,
        })
    }

    fn prefix(&self) -> String {
        let v: String = self
            .version
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("stagger-{v}-")
    }

    fn job_id(&self, devices: &[(&Device, u32)]) -> String {
        let mut h = crate::sim::rng::derive(&[devices.len() as u64]);
        for (d, a) in devices {
            for b in d.id.bytes() {
                h = crate::engine::backoff::mix(h ^ u64::from(b));
            }
            h = crate::engine::backoff::mix(h ^ u64::from(*a) ^ 0xA77E);
        }
        format!("{}{h:016x}", self.prefix())
    }

    fn arn(&mut self, thing: &str) -> Result<String, BackendError> {
        if let Some(a) = self.arns.get(thing) {
            return Ok(a.clone());
        }
        let v = self
            .client
            .call("GET", &format!("/things/{thing}"), None, "iot")?;
        let arn = v
            .get("thingArn")
            .and_then(Value::as_str)
            .ok_or_else(|| BackendError(format!("thing {thing}: no thingArn")))?
            .to_string();
        self.arns.insert(thing.to_string(), arn.clone());
        Ok(arn)
    }
}

impl Backend for AwsJobs {
    fn phases(&self) -> &'static [&'static str] {
        &["job"]
    }

    fn submit(&mut self, _phase: &str, devices: &[(&Device, u32)]) -> Result<String, BackendError> {
        let id = self.job_id(devices);
        let mut targets = Vec::new();
        for (d, _) in devices {
            targets.push(self.arn(&d.id)?);
        }
        let document =
            json!({ "operation": "firmware-update", "version": self.version, "uri": self.uri })
                .to_string();
        let mut body = json!({
            "targets": targets,
            "document": document,
            "description": format!("stagger firmware {}", self.version),
            "targetSelection": "SNAPSHOT",
            "timeoutConfig": { "inProgressTimeoutInMinutes": self.timeout_min },
        });
        if let Some(pct) = self.abort_pct {
            body["abortConfig"] = json!({ "criteriaList": [{
                "failureType": "FAILED", "action": "CANCEL",
                "thresholdPercentage": pct, "minNumberOfExecutedThings": devices.len().max(1)
            }]});
        }
        let path = format!("/jobs/{id}");
        let mut last = String::new();
        for n in 1..=self.client.http.max_tries {
            match self.client.once("PUT", &path, Some(&body), "iot") {
                Outcome::Ok(_) => return Ok(id),
                // The same id exists: an earlier try (or run) already created it.
                Outcome::Fatal(m) if m.contains("409") || m.contains("ResourceAlreadyExists") => {
                    return Ok(id)
                }
                Outcome::Fatal(m) => return Err(BackendError(m)),
                Outcome::Retry(m) | Outcome::Ambiguous(m) => last = m,
            }
            self.client.http.backoff(n);
        }
        Err(BackendError(format!("could not create job {id}: {last}")))
    }

    fn find(&mut self, _phase: &str, device: &Device) -> Result<Option<String>, BackendError> {
        let v = self
            .client
            .call("GET", &format!("/things/{}/jobs", device.id), None, "iot")?;
        let prefix = self.prefix();
        let empty = Vec::new();
        let mut best: Option<(i64, String)> = None;
        for s in v
            .get("executionSummaries")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            let Some(job) = s.get("jobId").and_then(Value::as_str) else {
                continue;
            };
            if !job.starts_with(&prefix) {
                continue;
            }
            let n = s
                .pointer("/jobExecutionSummary/executionNumber")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let queued = s
                .pointer("/jobExecutionSummary/queuedAt")
                .and_then(Value::as_f64)
                .unwrap_or(0.0) as i64;
            let key = queued * 1000 + n;
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, job.to_string()));
            }
        }
        Ok(best.map(|(_, j)| j))
    }

    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, BackendError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(t) => format!("/jobs/{reference}/things?maxResults=250&nextToken={t}"),
                None => format!("/jobs/{reference}/things?maxResults=250"),
            };
            let v = self.client.call("GET", &path, None, "iot")?;
            let empty = Vec::new();
            for s in v
                .get("executionSummaries")
                .and_then(Value::as_array)
                .unwrap_or(&empty)
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
                    "QUEUED" | "IN_PROGRESS" => OpState::InProgress,
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

    fn cancel(&mut self, reference: &str) -> Result<(), BackendError> {
        let body = json!({ "reasonCode": "STAGGER_HALT", "comment": "stagger halted the rollout on a safety rule" });
        match self.client.call(
            "PUT",
            &format!("/jobs/{reference}/cancel"),
            Some(&body),
            "iot",
        ) {
            Ok(_) => Ok(()),
            // Already completed or cancelled: nothing left to stop.
            Err(BackendError(m)) if m.contains("409") || m.contains("InvalidStateTransition") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
