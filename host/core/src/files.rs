//! Files that hold state: written whole or not at all, and private to the
//! gateway's user when they hold key material.

use std::path::Path;

use anyhow::Context as _;

/// Whether `name` is a plain file name: letters, digits, `-`, `_` and `.`,
/// neither `.` nor `..` — nothing that reaches another directory.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
}

/// Creates the directory `path` (and its parents) with the leaf private to
/// the gateway's user (mode 0700); an existing one must already be private.
/// A directory of state holds keys and the access log: others may not list
/// or read it.
#[cfg(unix)]
pub fn private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{} can be read by other users (mode {mode:03o}); it holds the gateway's keys and records: \
                     run `chmod 700 {}`",
                    path.display(),
                    path.display()
                );
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(not(unix))]
pub fn private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// Checks that the existing file `path` is private to the gateway's user
/// (no group or other permissions), naming the fix when it is not.
#[cfg(unix)]
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} can be read by other users (mode {mode:03o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Reads the key file `path`, which must be private to the gateway's user.
pub fn read_private(path: &Path) -> anyhow::Result<String> {
    check_private(path)?;
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

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

/// Replaces `target` with `bytes` in one step, the new file private to the
/// gateway's user (mode 0600), as [`write_atomically`] does.
pub fn replace_private(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = target.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, bytes)?;
    let f = std::fs::File::open(&tmp).with_context(|| format!("reading {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, target).with_context(|| format!("replacing {}", target.display()))
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
