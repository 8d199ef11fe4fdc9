//! An emulated gateway fleet for AWS IoT Jobs: each inventory thing polls the real
//! device-side API (`iot-jobs-data`: StartNextPendingJobExecution, UpdateJobExecution),
//! takes as long as the simulator's world model says (sped up), and reports the outcome.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{json, Value};

use crate::live::aws::Signed;
use crate::live::http::CallError;
use crate::live::inventory::Inventory;
use crate::scenario::Scenario;
use crate::world::gateway::Profile;

pub struct Fleet {
    pub client: Signed,
    pub scenario: Scenario,
    pub inventory: Inventory,
    pub speed: f64,
    pub fail: Vec<String>,
    pub seed: u64,
}

struct Busy {
    job: String,
    done: Instant,
    ok: bool,
    /// The update installed, but the gateway failed its post-update health check.
    unhealthy: bool,
}

impl Fleet {
    /// Registers every thing (idempotent).
    pub fn create_things(&mut self) -> Result<(), String> {
        for d in &self.inventory.devices {
            match self.client.call(
                "POST",
                &format!("/things/{}", d.id),
                Some(&json!({})),
                "iot",
            ) {
                Ok(_) | Err(CallError::Conflict(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    fn duration(&self, index: usize, rng: &mut Pcg64) -> Duration {
        let s = &self.scenario;
        let p = Profile::draw(s, self.seed, index as u32);
        let rate = p.last_mile_bps.min(Profile::window_cap_bps(
            s.network.tcp_window_kb,
            p.origin_rtt_ms,
        ));
        let secs = s.firmware.size_mb * 8e6 / rate.max(1.0) + s.install.seconds.sample(rng);
        Duration::from_secs_f64(secs / self.speed)
    }

    /// Plays the fleet until the process is stopped.
    pub fn run(&mut self) -> Result<(), String> {
        let mut rng = Pcg64::seed_from_u64(self.seed);
        let mut busy: BTreeMap<usize, Busy> = BTreeMap::new();
        loop {
            for i in 0..self.inventory.devices.len() {
                let thing = self.inventory.devices[i].id.clone();
                if let Some(b) = busy.get(&i) {
                    if Instant::now() < b.done {
                        continue;
                    }
                    let status = if b.ok { "SUCCEEDED" } else { "FAILED" };
                    let details = if b.unhealthy {
                        json!({ "agent": "stagger-emulator", "health": "fail" })
                    } else {
                        json!({ "agent": "stagger-emulator" })
                    };
                    let body = json!({ "status": status, "statusDetails": details });
                    // A rejected update (e.g. the job was cancelled or timed out) also ends the work.
                    let _ = self.client.once(
                        "POST",
                        &format!("/things/{thing}/jobs/{}", b.job),
                        Some(&body),
                        "iot-jobs-data",
                    );
                    busy.remove(&i);
                    continue;
                }
                let body = json!({ "statusDetails": { "agent": "stagger-emulator" } });
                if let Ok(v) = self.client.once(
                    "PUT",
                    &format!("/things/{thing}/jobs/$next"),
                    Some(&body),
                    "iot-jobs-data",
                ) {
                    if let Some(job) = v.pointer("/execution/jobId").and_then(Value::as_str) {
                        let fail_rate = self.scenario.failures.install_failure_rate.clamp(0.0, 1.0);
                        let defect = self.scenario.firmware.defect_rate.clamp(0.0, 1.0);
                        let unhealthy = rng.random_bool(defect);
                        let ok = !self.fail.contains(&thing)
                            && !rng.random_bool(fail_rate)
                            && !unhealthy;
                        let done = Instant::now() + self.duration(i, &mut rng);
                        busy.insert(
                            i,
                            Busy {
                                job: job.to_string(),
                                done,
                                ok,
                                unhealthy,
                            },
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
