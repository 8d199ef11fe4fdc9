//! Live rollouts: the inventory, backends, the crash-safe journal and the driver that runs
//! the engine against a real device-management API. Nothing here acts without --execute.

pub mod approvals;
pub mod aws;
pub mod backend;
pub mod clock;
pub mod executor;
pub mod fake;
pub mod http;
pub mod inventory;
pub mod journal;
pub mod log;
pub mod metrics;
pub mod signals;
pub mod status;
pub mod watson;
