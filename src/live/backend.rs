//! What a device-management backend must do for the live driver. Every method is one
//! bounded exchange with the platform (lists page through to the end) and never sleeps or
//! retries: the driver decides when to try again. Implementations turn engine starts into
//! platform operations and platform state back into per-device states.

use super::http::CallError;
use super::inventory::Device;
use super::signals::Signal;
use crate::engine::Facts;
use serde_json::Value;

/// Pre-check facts as a fleet publishes them (an AWS shadow's `state.reported`, a Watson
/// device's `metadata.stagger`): `cpu_pct`, `disk_free_mb`, `battery_pct`, `busy`,
/// `link_stable_s`. A field that is absent or of the wrong type is unknown.
pub fn published_facts(fields: Option<&Value>) -> Facts {
    let get = |k: &str| fields.and_then(|f| f.get(k));
    let num = |k: &str| get(k).and_then(Value::as_f64);
    Facts {
        online: true,
        cpu_pct: num("cpu_pct"),
        disk_mb: num("disk_free_mb"),
        battery_pct: num("battery_pct"),
        busy: get("busy").and_then(Value::as_bool),
        stable_for: num("link_stable_s").map(crate::time::Time::from_secs),
    }
}

/// A device's state within one platform operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpState {
    /// Waiting for the device to pick it up (AWS QUEUED): nothing has begun on it.
    Queued,
    InProgress,
    Succeeded,
    /// Ended without success; the platform's word for it.
    Failed(String),
}

impl OpState {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, OpState::Queued | OpState::InProgress)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    pub device: String,
    pub state: OpState,
}

/// One operation found on the platform for this rollout's firmware.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformOp {
    pub reference: String,
    /// Index into `phases()`.
    pub phase: usize,
    /// The correlation key the request carried, if it was one of ours.
    pub intent: Option<String>,
    pub devices: Vec<DeviceStatus>,
}

pub trait Backend {
    /// The operation phases of one update attempt, in order (watson: download, update;
    /// aws: job).
    fn phases(&self) -> &'static [&'static str];
    /// Most devices one request may target.
    fn max_batch(&self) -> usize;
    /// Devices with different keys never share a request (Watson: one device type each).
    fn batch_key(&self, device: &Device) -> String;
    /// The signals this backend feeds the engine.
    fn signals(&self) -> &'static [Signal];
    /// Whether the platform can stop an operation that was already sent.
    fn can_cancel(&self) -> bool {
        self.signals().contains(&Signal::Cancel)
    }
    /// Sends one request for `phase` on `devices`, carrying the correlation key `intent`;
    /// returns the platform's reference for it.
    fn submit(
        &mut self,
        phase: usize,
        intent: &str,
        devices: &[&Device],
    ) -> Result<String, CallError>;
    /// Every operation of this rollout's firmware on the platform, with each device's state.
    fn survey(&mut self) -> Result<Vec<PlatformOp>, CallError>;
    /// The operation that carries `intent`, if the platform has it.
    fn lookup(&mut self, phase: usize, intent: &str) -> Result<Option<String>, CallError>;
    /// Per-device state of one operation.
    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, CallError>;
    /// Stops what has not started yet in an operation (only when `can_cancel`).
    fn cancel(&mut self, reference: &str) -> Result<(), CallError>;
    /// Withdraws one device's part of an operation that it has not begun (only when
    /// `can_cancel`); one already begun is left to finish.
    fn cancel_queued(&mut self, _reference: &str, _device: &Device) -> Result<(), CallError> {
        Ok(())
    }
    /// One cheap authenticated read: do the credentials work and does the endpoint answer?
    fn ping(&mut self) -> Result<(), CallError>;
    /// Whether the platform knows this device (Watson: under its type).
    fn exists(&mut self, device: &Device) -> Result<bool, CallError>;
    /// A device's pre-update facts (only called when `signals()` has `Prechecks`).
    fn facts(&mut self, _device: &Device) -> Result<Facts, CallError> {
        Ok(Facts::unknown())
    }
    /// Whether a device whose operation `reference` failed failed its post-update health
    /// check (only called when `signals()` has `Health`).
    fn health_failed(&mut self, _reference: &str, _device: &Device) -> Result<bool, CallError> {
        Ok(false)
    }
}
