//! Writing output files: parent folders are created, and errors name the path.

use crate::error::Failure;

/// Writes bytes to a file, naming it in any error.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Failure::io(path, e))
}
