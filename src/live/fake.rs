//! An in-process platform on a virtual clock, for property tests and benchmarks of the
//! live driver: whole rollouts of any size in no wall-clock time. It keeps the counts a
//! platform would see (triggers per device, overlaps, triggers after success, devices in
//! flight), so that tests judge safety from the platform's side. Not a backend for real use.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::backend::{Backend, DeviceStatus, OpState, PlatformOp};
use super::clock::{Clock, VirtualClock};
use super::http::CallError;
use super::inventory::Device;
use super::signals::Signal;

struct FakeOp {
    reference: String,
    phase: usize,
    intent: String,
    /// (device, end ms, succeeds)
    devices: Vec<(String, u64, bool)>,
}

/// What the platform saw, per device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Requests per phase that included the device.
    pub triggers: BTreeMap<String, Vec<u32>>,
    /// Successful completions of the last phase.
    pub updated: BTreeMap<String, u32>,
    /// Requests for a device while another of its operations was running.
    pub overlaps: u32,
    /// Requests for a device that had already been updated.
    pub after_success: u32,
    /// Most devices running an operation at once.
    pub max_in_flight: usize,
    pub requests: u32,
}

pub struct FakePlatform {
    clock: VirtualClock,
    phases: &'static [&'static str],
    /// Duration of each phase in ms.
    pub phase_ms: Vec<u64>,
    /// Devices whose last phase always fails.
    pub failing: BTreeSet<String>,
    ops: Vec<FakeOp>,
    /// When each device's latest operation ends.
    busy_until: BTreeMap<String, u64>,
    /// End times of running device operations (for the in-flight count).
    ends: BinaryHeap<Reverse<u64>>,
    pub seen: Seen,
    /// Every nth submit answers ambiguously after acting (0 = never).
    pub ambiguous_every: u32,
    submits: u32,
}

impl FakePlatform {
    /// `two_phase`: download then update (Watson-like, no cancel); else one job (AWS-like).
    pub fn new(clock: VirtualClock, two_phase: bool) -> FakePlatform {
        let (phases, phase_ms): (&'static [&'static str], Vec<u64>) = if two_phase {
            (&["download", "update"], vec![400_000, 240_000])
        } else {
            (&["job"], vec![640_000])
        };
        FakePlatform {
            clock,
            phases,
            phase_ms,
            failing: BTreeSet::new(),
            ops: Vec::new(),
            busy_until: BTreeMap::new(),
            ends: BinaryHeap::new(),
            seen: Seen::default(),
            ambiguous_every: 0,
            submits: 0,
        }
    }

    fn running(&self, device: &str, now: u64) -> bool {
        self.busy_until.get(device).is_some_and(|end| *end > now)
    }

    fn op(&self, reference: &str) -> Option<&FakeOp> {
        let n: usize = reference.strip_prefix("op-")?.parse().ok()?;
        self.ops.get(n.checked_sub(1)?)
    }

    fn state(&self, end: u64, ok: bool, now: u64) -> OpState {
        if end > now {
            OpState::InProgress
        } else if ok {
            OpState::Succeeded
        } else {
            OpState::Failed("status 2".into())
        }
    }
}

impl Backend for FakePlatform {
    fn phases(&self) -> &'static [&'static str] {
        self.phases
    }

    fn max_batch(&self) -> usize {
        100
    }

    fn batch_key(&self, _device: &Device) -> String {
        String::new()
    }

    fn ping(&mut self) -> Result<(), CallError> {
        Ok(())
    }

    /// The in-process platform takes any device.
    fn exists(&mut self, _device: &Device) -> Result<bool, CallError> {
        Ok(true)
    }

    fn signals(&self) -> &'static [Signal] {
        &[]
    }

    fn submit(
        &mut self,
        phase: usize,
        intent: &str,
        devices: &[&Device],
    ) -> Result<String, CallError> {
        let now = self.clock.unix_ms();
        let last = phase + 1 == self.phases.len();
        let mut ds = Vec::new();
        for d in devices {
            if self.running(&d.id, now) {
                self.seen.overlaps += 1;
            }
            if self.seen.updated.contains_key(&d.id) {
                self.seen.after_success += 1;
            }
            let t = self
                .seen
                .triggers
                .entry(d.id.clone())
                .or_insert_with(|| vec![0; self.phases.len()]);
            t[phase] += 1;
            let ok = !(last && self.failing.contains(&d.id));
            let end = now + self.phase_ms[phase];
            if last && ok {
                *self.seen.updated.entry(d.id.clone()).or_default() += 1;
            }
            self.busy_until.insert(d.id.clone(), end);
            self.ends.push(Reverse(end));
            ds.push((d.id.clone(), end, ok));
        }
        self.seen.requests += 1;
        let reference = format!("op-{:06}", self.ops.len() + 1);
        self.ops.push(FakeOp {
            reference: reference.clone(),
            phase,
            intent: intent.to_string(),
            devices: ds,
        });
        while self.ends.peek().is_some_and(|Reverse(e)| *e <= now) {
            self.ends.pop();
        }
        self.seen.max_in_flight = self.seen.max_in_flight.max(self.ends.len());
        self.submits += 1;
        if self.ambiguous_every > 0 && self.submits.is_multiple_of(self.ambiguous_every) {
            return Err(CallError::Ambiguous("answered 500 after acting".into()));
        }
        Ok(reference)
    }

    fn survey(&mut self) -> Result<Vec<PlatformOp>, CallError> {
        let now = self.clock.unix_ms();
        Ok(self
            .ops
            .iter()
            .map(|o| PlatformOp {
                reference: o.reference.clone(),
                phase: o.phase,
                intent: Some(o.intent.clone()),
                devices: o
                    .devices
                    .iter()
                    .map(|(d, end, ok)| DeviceStatus {
                        device: d.clone(),
                        state: self.state(*end, *ok, now),
                    })
                    .collect(),
            })
            .collect())
    }

    fn lookup(&mut self, phase: usize, intent: &str) -> Result<Option<String>, CallError> {
        Ok(self
            .ops
            .iter()
            .find(|o| o.phase == phase && o.intent == intent)
            .map(|o| o.reference.clone()))
    }

    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, CallError> {
        let now = self.clock.unix_ms();
        let op = self
            .op(reference)
            .ok_or_else(|| CallError::NotFound(format!("no operation {reference}")))?;
        Ok(op
            .devices
            .iter()
            .map(|(d, end, ok)| DeviceStatus {
                device: d.clone(),
                state: self.state(*end, *ok, now),
            })
            .collect())
    }

    fn cancel(&mut self, reference: &str) -> Result<(), CallError> {
        Err(CallError::Invalid(format!("no cancel for {reference}")))
    }
}
