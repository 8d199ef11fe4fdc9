//! What a device-management backend must do for the live driver. Implementations turn
//! engine starts into platform operations and platform state back into observations.

use super::inventory::Device;

/// A device's state within one backend operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpState {
    InProgress,
    Succeeded,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    pub device: String,
    pub state: OpState,
}

/// A run-time backend failure (exit 1), with a message that never contains credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub trait Backend {
    /// The operation phases of one update, in order (watson: download, update; aws: job).
    fn phases(&self) -> &'static [&'static str];
    /// Starts `phase` for `devices` (each with its attempt number); returns the backend's
    /// reference for the operation.
    fn submit(&mut self, phase: &str, devices: &[(&Device, u32)]) -> Result<String, BackendError>;

    /// Finds an operation of `phase` for this firmware that already covers `device`
    /// (after a crash or an ambiguous failure), so that nothing is triggered twice.
    fn find(&mut self, phase: &str, device: &Device) -> Result<Option<String>, BackendError>;
    /// Per-device state of an operation.
    fn status(&mut self, reference: &str) -> Result<Vec<DeviceStatus>, BackendError>;
    /// Stops an operation where the backend allows it.
    fn cancel(&mut self, reference: &str) -> Result<(), BackendError>;
}
