//! What a device-management backend must do for the live driver. Every method is one
//! bounded exchange with the platform (lists page through to the end) and never sleeps or
//! retries: the driver decides when to try again. Implementations turn engine starts into
//! platform operations and platform state back into per-device states.

use super::http::CallError;
use super::inventory::Device;
use super::signals::Signal;
use crate::engine::Facts;

/// A device's state within one platform operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpState {
    InProgress,
    Succeeded,
    /// Ended without success; the platform's word for it.
    Failed(String),
}

impl OpState {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, OpState::InProgress)
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
