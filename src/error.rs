//! Top-level failures and their exit codes: 1 run-time, 2 bad input, 3 safety halt.

use std::fmt;

use crate::scenario::InputError;

#[derive(Debug)]
pub enum Failure {
    /// Bad flags, scenario, plan or inventory (exit 2).
    Input(InputError),
    /// I/O, network or backend trouble (exit 1).
    Runtime(String),
    /// A live rollout stopped on a safety rule (exit 3).
    Halted(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Runtime(_) => 1,
            Failure::Input(_) => 2,
            Failure::Halted(_) => 3,
        }
    }

    pub fn input(msg: impl Into<String>) -> Failure {
        Failure::Input(InputError::new(msg))
    }

    /// An I/O error on a file we were asked to write or read.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> Failure {
        Failure::Runtime(format!("{}: {e}", path.display()))
    }
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure::Input(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Input(e) => write!(f, "{e}"),
            Failure::Runtime(m) => write!(f, "{m}"),
            Failure::Halted(m) => write!(f, "rollout halted: {m}"),
        }
    }
}
