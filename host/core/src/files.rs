//! Files that hold state: written whole or not at all, and private to the
//! gateway's user when they hold key material.

use std::path::Path;

use anyhow::Context as _;

/// Writes `bytes` to a new file at `path` readable and writable by the
/// gateway's user only (mode 0600); an existing file is never overwritten.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes `bytes` to a new file at `path`.
#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Replaces `target` with `bytes` in one step: written to a uniquely named
/// temporary file beside it, synced, and renamed into place, so a reader
/// finds the old file or the new one, never part of one.
pub fn write_atomically(target: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = target.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, target)
}
