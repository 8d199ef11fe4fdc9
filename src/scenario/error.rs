//! Input errors that name the file, the key path and the line. They map to exit code 2.

use std::fmt;

/// A problem with user input (a scenario, a plan, a flag). Never a panic.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: Option<String>,
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Where the value came from when it was not the file (for example `--set`).
    pub origin: Option<String>,
    pub message: String,
}

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        InputError {
            file: None,
            key: None,
            line: None,
            column: None,
            origin: None,
            message: message.into(),
        }
    }

    pub fn at_key(key: &str, message: impl Into<String>) -> Self {
        InputError {
            key: (!key.is_empty()).then(|| key.to_string()),
            ..InputError::new(message)
        }
    }

    pub fn in_file(mut self, file: &str) -> Self {
        self.file.get_or_insert_with(|| file.to_string());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            write!(f, ": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "`{key}`")?;
            if let Some(origin) = &self.origin {
                write!(f, " (from {origin})")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for InputError {}
