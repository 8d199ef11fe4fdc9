//! Traces: the observations of a simulated run in the live journal's record format, so one
//! reader serves simulated runs and real rollouts alike. Observations of one time share a
//! line, as do consecutive commands; the gateways' regions and hardware classes go in an
//! inventory CSV beside the trace, as a live rollout has its inventory.

use std::io::Write;

use crate::engine::GatewayInfo;
use crate::live::journal::{self, Cmd, Header, Obs, Record};
use crate::scenario::Scenario;
use crate::simulate::Traced;
use crate::time::Time;

/// The header a simulated run's trace carries: backend `simulated`, no plan digest.
pub fn header(scenario: &Scenario, policy: &str, seed: u64, inventory: &[u8]) -> Header {
    Header {
        journal: "stagger".into(),
        version: journal::VERSION,
        plan: policy.into(),
        plan_digest: String::new(),
        inventory_digest: journal::digest(&[inventory]),
        devices: scenario.fleet.gateways as usize,
        backend: "simulated".into(),
        endpoint: scenario.name.clone(),
        firmware_version: scenario.firmware.version.clone(),
        firmware_digest: String::new(),
        seed,
        started_unix_ms: 0,
        time_scale: 1.0,
    }
}

/// The inventory CSV of a simulated fleet: `device_id,region,hw`, one row per gateway.
pub fn inventory_csv(scenario: &Scenario, gateways: &[GatewayInfo]) -> Vec<u8> {
    let mut out = b"device_id,region,hw\n".to_vec();
    for (i, g) in gateways.iter().enumerate() {
        let region = &scenario.fleet.regions[g.region as usize];
        let hw = &scenario.fleet.hw_classes[g.hw as usize];
        out.extend_from_slice(format!("gw-{i:06},{region},{hw}\n").as_bytes());
    }
    out
}

/// Collects a run's records, grouped the way the live journal groups them.
#[derive(Clone)]
pub struct TraceWriter {
    out: Vec<u8>,
    obs: Option<(u64, Vec<Obs>)>,
    cmds: Option<(u64, Vec<Cmd>)>,
    next_cmd: u64,
    /// The time of the last record: commands at a later time follow a tick, as live.
    last_t: u64,
}

impl TraceWriter {
    pub fn new(header: &Header) -> TraceWriter {
        let mut out = serde_json::to_vec(header).expect("a header serializes");
        out.push(b'\n');
        TraceWriter {
            out,
            obs: None,
            cmds: None,
            next_cmd: 1,
            last_t: 0,
        }
    }

    pub fn record(&mut self, t: Time, item: Traced<'_>) {
        let t = t.millis();
        match item {
            Traced::Observation(o) => {
                self.flush_cmds();
                match &mut self.obs {
                    Some((at, list)) if *at == t => list.push(Obs::from(o)),
                    _ => {
                        self.flush_obs();
                        self.obs = Some((t, vec![Obs::from(o)]));
                        self.last_t = t;
                    }
                }
            }
            Traced::Command(c) => {
                self.flush_obs();
                if t != self.last_t {
                    self.flush_cmds();
                    self.line(&Record::Tick { t });
                    self.last_t = t;
                }
                let c = Cmd::from(c);
                match &mut self.cmds {
                    Some((_, list)) => list.push(c),
                    None => self.cmds = Some((self.next_cmd, vec![c])),
                }
                self.next_cmd += 1;
            }
        }
    }

    fn flush_obs(&mut self) {
        if let Some((t, o)) = self.obs.take() {
            self.line(&Record::Obs { t, o });
        }
    }

    fn flush_cmds(&mut self) {
        if let Some((n, c)) = self.cmds.take() {
            self.line(&Record::Cmd { n, c });
        }
    }

    fn line(&mut self, r: &Record) {
        serde_json::to_writer(&mut self.out, r).expect("a record serializes");
        self.out.push(b'\n');
    }

    /// The trace so far, as a journal read now would see it.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = self.clone();
        w.flush_obs();
        w.flush_cmds();
        w.out
    }

    /// The trace's bytes, ending with a `done` record at `end`.
    pub fn finish(mut self, end: Time) -> Vec<u8> {
        self.flush_obs();
        self.flush_cmds();
        let done = Record::Done { t: end.millis() };
        self.line(&done);
        let mut out = self.out;
        out.flush().ok();
        out
    }
}

/// A traced run: its outcome, the trace's bytes and the inventory CSV to write beside it.
pub struct TracedRun {
    pub outcome: crate::simulate::Outcome,
    pub trace: Vec<u8>,
    pub inventory: Vec<u8>,
}

/// `simulate` with a refit when the policy's `refit_after` stage completes: the refit sees
/// the trace so far, as a live driver sees its journal.
pub fn simulate_refitted(
    scenario: &Scenario,
    name: &str,
    policy: &crate::engine::Policy,
    seed: u64,
    opts: &crate::simulate::Options,
    answer: &crate::refit::Answer,
) -> Result<TracedRun, crate::scenario::InputError> {
    let world = crate::world::World::new(
        &crate::scenario::uncertainty::for_seed(scenario, seed),
        seed,
    );
    let inventory = inventory_csv(scenario, &world.inventory());
    drop(world);
    let writer =
        std::cell::RefCell::new(TraceWriter::new(&header(scenario, name, seed, &inventory)));
    let mut decided = None;
    let mut failed = None;
    let mut outcome = crate::simulate::run_replanned(
        scenario,
        name,
        policy,
        seed,
        opts,
        &mut |t, item| writer.borrow_mut().record(t, item),
        &mut |t, _wave, stage| {
            let observed = || {
                let bytes = writer.borrow().snapshot();
                let text = String::from_utf8_lossy(&bytes);
                journal::parse(&text)
                    .and_then(|p| crate::fit::observe::of_parsed("the run so far", &p, None))
            };
            let decision = answer.decide(observed, stage, t.secs());
            match decision {
                Ok(d) => {
                    let pace = d.pace;
                    decided = Some(d);
                    crate::engine::pace_milli(pace)
                }
                Err(e) => {
                    failed = Some(e);
                    1000
                }
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    outcome.summary.refit = decided;
    let trace = writer
        .into_inner()
        .finish(Time::from_secs(outcome.summary.makespan_s));
    Ok(TracedRun {
        outcome,
        trace,
        inventory,
    })
}

/// Runs `policy` named `name` on `scenario` with `seed`, tracing it.
pub fn simulate(
    scenario: &Scenario,
    name: &str,
    policy: &crate::engine::Policy,
    seed: u64,
    opts: &crate::simulate::Options,
) -> TracedRun {
    // The fleet this seed draws, for the inventory (a cheap build next to the run itself).
    let world = crate::world::World::new(
        &crate::scenario::uncertainty::for_seed(scenario, seed),
        seed,
    );
    let inventory = inventory_csv(scenario, &world.inventory());
    drop(world);
    let mut writer = TraceWriter::new(&header(scenario, name, seed, &inventory));
    let outcome =
        crate::simulate::run_traced(scenario, name, policy, seed, opts, &mut |t, item| {
            writer.record(t, item)
        });
    let trace = writer.finish(Time::from_secs(outcome.summary.makespan_s));
    TracedRun {
        outcome,
        trace,
        inventory,
    }
}
