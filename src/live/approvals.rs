//! Approvals of a paused rollout. `stagger approve` appends the stage's name to a file
//! beside the journal (the executor holds the journal's lock, so nothing else writes it);
//! the executor reads the file each round and journals the approval as an engine input, so
//! that every replay approves the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().unwrap_or_default().to_os_string();
    name.push(".approvals");
    journal.with_file_name(name)
}

/// Records an approval of `stage` (one short appended line, fsync'd).
pub fn approve(journal: &Path, stage: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(journal))?;
    f.write_all(format!("{stage}\n").as_bytes())?;
    f.sync_all()
}

/// Whether `stage` has been approved.
pub fn approved(journal: &Path, stage: &str) -> bool {
    std::fs::read_to_string(path(journal))
        .map(|t| t.lines().any(|l| l.trim() == stage))
        .unwrap_or(false)
}
