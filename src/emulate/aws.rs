//! An emulated gateway fleet for AWS IoT Jobs, played by the simulator's own world model:
//! downloads share the links and caches, installs take the scenario's time, gateways
//! disconnect under load and fail as the scenario says, in scaled wall-clock time. Each
//! thing talks to the real device-side API (`iot-jobs-data`: StartNextPendingJobExecution,
//! UpdateJobExecution) only while the world has it online, so an offline thing leaves its
//! execution QUEUED as a real one would. With `publish_facts`, each thing's pre-check facts
//! (battery, CPU, disk, busy, link stability) go to its classic shadow.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine::{Cause, Command, Facts, Observation};
use crate::live::aws::Signed;
use crate::live::http::{encode_query, CallError};
use crate::live::inventory::Inventory;
use crate::scenario::Scenario;
use crate::time::Time;
use crate::world::{Event, World};

pub struct Fleet {
    pub client: Signed,
    /// The world to play; its fleet has as many gateways as the inventory (gateway i is
    /// the inventory's thing i).
    pub scenario: Scenario,
    pub inventory: Inventory,
    pub speed: f64,
    /// Things whose updates always fail.
    pub fail: Vec<String>,
    /// Things that never pick up a job (offline for good).
    pub offline: Vec<String>,
    pub publish_facts: bool,
    pub seed: u64,
}

/// The job a thing is working on, and the world's attempt number for it.
struct Job {
    id: String,
    attempt: u32,
}

/// How often (plan seconds) an online agent reports its facts to its shadow: well inside
/// the driver's freshness limit (`rollout --facts-max-age-s`, 1,800 s by default), so only an
/// agent that stopped reporting looks stale.
const REPORT_EVERY_S: f64 = 300.0;
const TURN: Duration = Duration::from_millis(50);

impl Fleet {
    /// Registers every thing (idempotent).
    pub fn create_things(&mut self) -> Result<(), String> {
        for d in &self.inventory.devices {
            match self.client.call(
                "POST",
                &format!("/things/{}", encode_query(&d.id)),
                Some(&json!({})),
                "iot",
            ) {
                Ok(_) | Err(CallError::Conflict(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Plays the fleet until the process is stopped.
    pub fn run(&mut self) -> Result<(), String> {
        let n = self.inventory.devices.len();
        if self.scenario.fleet.gateways as usize != n {
            return Err(format!(
                "the scenario's fleet has {} gateways, the inventory {n}",
                self.scenario.fleet.gateways
            ));
        }
        let mut world = World::new(&self.scenario, self.seed);
        let t0 = Instant::now();
        let mut jobs: BTreeMap<u32, Job> = BTreeMap::new();
        let mut attempts = vec![0u32; n];
        let mut obs = Vec::new();
        // When each thing's agent next reports its facts (plan time).
        let mut next_report = vec![Time::ZERO; n];
        loop {
            let now = Time::from_secs(t0.elapsed().as_secs_f64() * self.speed);
            while world.next_event_time().is_some_and(|t| t <= now) {
                let Some((t, event)) = world.pop() else { break };
                match event {
                    Event::Tick => world.on_tick(t),
                    Event::EngineWake => {}
                    other => world.handle(t, other, &mut obs),
                }
                self.report(&mut jobs, &mut obs);
            }
            // Things are told of new jobs (MQTT notify on AWS): only those with one ask.
            let pending = self.things_with_queued_jobs();
            for g in 0..n as u32 {
                let thing = self.inventory.devices[g as usize].id.clone();
                if !pending.contains(&thing)
                    || jobs.contains_key(&g)
                    || self.offline.contains(&thing)
                    || !world.is_online(g)
                {
                    continue;
                }
                let Some(id) = self.next_job(&thing) else {
                    continue;
                };
                attempts[g as usize] += 1;
                let attempt = attempts[g as usize];
                jobs.insert(g, Job { id, attempt });
                world.apply(now, &Command::Start { gw: g, attempt }, &mut obs);
                self.report(&mut jobs, &mut obs);
            }
            if self.publish_facts {
                for g in 0..n as u32 {
                    // A thing offline for good has no agent to report anything.
                    if next_report[g as usize] > now
                        || self
                            .offline
                            .contains(&self.inventory.devices[g as usize].id)
                    {
                        continue;
                    }
                    next_report[g as usize] = now + Time::from_secs(REPORT_EVERY_S);
                    world.apply(now, &Command::Check { gw: g }, &mut obs);
                    let facts = obs.iter().find_map(|o| match o {
                        Observation::Checked { gw, facts } if *gw == g => Some(*facts),
                        _ => None,
                    });
                    obs.retain(|o| !matches!(o, Observation::Checked { .. }));
                    // An offline agent cannot write its shadow.
                    if let Some(f) = facts.filter(|f| f.online) {
                        self.publish(g, &f);
                    }
                }
            }
            std::thread::sleep(TURN);
        }
    }

    /// Things with a QUEUED execution in any job still in progress (every page).
    fn things_with_queued_jobs(&mut self) -> BTreeSet<String> {
        let mut things = BTreeSet::new();
        for job in self.pages("/jobs?status=IN_PROGRESS", "jobs") {
            let Some(id) = job.get("jobId").and_then(Value::as_str) else {
                continue;
            };
            let path = format!("/jobs/{}/things?status=QUEUED", encode_query(id));
            for e in self.pages(&path, "executionSummaries") {
                if let Some(arn) = e.get("thingArn").and_then(Value::as_str) {
                    things.insert(arn.rsplit('/').next().unwrap_or(arn).to_string());
                }
            }
        }
        things
    }

    /// Every item of a paged list (a failed page ends the list: asked again next turn).
    fn pages(&mut self, path: &str, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = match &token {
                Some(t) => format!("{path}&nextToken={}", encode_query(t)),
                None => path.to_string(),
            };
            let Ok(v) = self.client.once("GET", &url, None, "iot") else {
                return out;
            };
            if let Some(items) = v.get(key).and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            token = v.get("nextToken").and_then(Value::as_str).map(String::from);
            if token.is_none() {
                return out;
            }
        }
    }

    /// StartNextPendingJobExecution: the id of the job the thing now works on, if any.
    fn next_job(&mut self, thing: &str) -> Option<String> {
        let body = json!({ "statusDetails": { "agent": "stagger-emulator" } });
        let v = self
            .client
            .once(
                "PUT",
                &format!("/things/{}/jobs/$next", encode_query(thing)),
                Some(&body),
                "iot-jobs-data",
            )
            .ok()?;
        v.pointer("/execution/jobId")
            .and_then(Value::as_str)
            .map(String::from)
    }

    /// Turns the world's outcomes into UpdateJobExecution calls.
    fn report(&mut self, jobs: &mut BTreeMap<u32, Job>, obs: &mut Vec<Observation>) {
        for o in obs.drain(..) {
            let (gw, attempt, status, cause) = match o {
                Observation::Succeeded { gw } => {
                    let Some(a) = jobs.get(&gw).map(|j| j.attempt) else {
                        continue;
                    };
                    (gw, a, "SUCCEEDED", None)
                }
                Observation::Failed { gw, attempt, cause } => (gw, attempt, "FAILED", Some(cause)),
                Observation::Rejected { gw, attempt } => {
                    (gw, attempt, "REJECTED", Some(Cause::Rejected))
                }
                _ => continue,
            };
            if jobs.get(&gw).is_none_or(|j| j.attempt != attempt) {
                continue;
            }
            let Some(job) = jobs.remove(&gw) else {
                continue;
            };
            let thing = self.inventory.devices[gw as usize].id.clone();
            let forced = status == "SUCCEEDED" && self.fail.contains(&thing);
            let status = if forced { "FAILED" } else { status };
            let mut details = json!({ "agent": "stagger-emulator" });
            if let Some(c) = cause {
                details["cause"] = json!(format!("{c:?}").to_lowercase());
            }
            if cause == Some(Cause::HealthCheck) {
                // Installed, then failed its post-update health check.
                details["health"] = json!("fail");
            }
            let body = json!({ "status": status, "statusDetails": details });
            // Refused when the job was cancelled or timed out meanwhile: the work ends anyway.
            let _ = self.client.once(
                "POST",
                &format!("/things/{}/jobs/{}", encode_query(&thing), job.id),
                Some(&body),
                "iot-jobs-data",
            );
        }
    }

    /// Writes a thing's pre-check facts to its classic shadow, as its agent would.
    fn publish(&mut self, g: u32, f: &Facts) {
        let mut reported = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                reported.insert(k.into(), v);
            }
        };
        put("cpu_pct", f.cpu_pct.map(|v| json!(v.round())));
        put("disk_free_mb", f.disk_mb.map(|v| json!(v.round())));
        put("battery_pct", f.battery_pct.map(|v| json!(v.round())));
        put("busy", f.busy.map(|v| json!(v)));
        put(
            "link_stable_s",
            f.stable_for.map(|t| {
                json!(if t == Time::NEVER {
                    1e9
                } else {
                    t.secs().round()
                })
            }),
        );
        let thing = &self.inventory.devices[g as usize].id;
        let body = json!({ "state": { "reported": reported } });
        let _ = self.client.once(
            "POST",
            &format!("/things/{}/shadow", encode_query(thing)),
            Some(&body),
            "iotdata",
        );
    }
}
