//! Files that hold secrets: created owner-only (0700 directories, 0600 files) on Unix.

use std::io::Write as _;
use std::path::Path;

/// Creates a directory (and its parents) readable only by the owner.
///
/// # Errors
/// The I/O error.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a new file readable only by the owner. Fails if it exists, so a secret is never
/// silently replaced.
///
/// # Errors
/// The I/O error, including `AlreadyExists`.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
