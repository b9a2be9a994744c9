//! `fhirgate backup` and `fhirgate restore`: a data directory's state — the
//! database, and its key material still sealed under the key-encryption key
//! — copied consistently while the gateway serves, and put back only into a
//! new directory, checked before it is put in place.
//!
//! The KEK is not in a backup: it is kept apart (it never changes), and a
//! restore needs it to prove the backup opens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use fhirgate_core::files;
use fhirgate_core::vault::{self, Kek};
use fhirgate_store::Store;
use fhirgate_store::material::{CURSOR_FILE, KeyMaterial, PEPPER_FILE};
use serde::{Deserialize, Serialize};

use crate::directory::SECRETS_DIR;

/// The manifest's file name in a backup.
pub const MANIFEST: &str = "fhirgate-backup.json";
const FORMAT: &str = "fhirgate-backup/1";
const DATABASE: &str = "fhirgate.sqlite3";

/// What a backup holds: each file's SHA-256, and the KEK its key material is
/// sealed under.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// When the snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The id of the key-encryption key the key material is sealed under.
    pub kek: String,
    /// Path in the backup → SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

/// Copies the state in `data_dir` to the new directory `dest` while a gateway
/// may be serving from it: a consistent snapshot of the database and the
/// sealed key files (plain ones from earlier versions are sealed first).
pub async fn backup(data_dir: &Path, kek_file: Option<&Path>, dest: &Path) -> anyhow::Result<Manifest> {
    if !data_dir.join(DATABASE).is_file() {
        bail!("{} holds no gateway database ({DATABASE})", data_dir.display());
    }
    refuse_non_empty(dest, "the backup's destination")?;
    let store = Store::open_dir(data_dir).await?;
    let material = KeyMaterial::open(&store, data_dir, kek_file).await?;
    let secrets = data_dir.join(SECRETS_DIR);
    vault::seal_plain_files(&secrets, &material.kek)?;

    files::private_dir(dest)?;
    store.snapshot_into(&dest.join(DATABASE)).await?;
    let mut names = vec![PEPPER_FILE.to_owned(), CURSOR_FILE.to_owned()];
    if secrets.is_dir() {
        files::private_dir(&dest.join(SECRETS_DIR))?;
        for entry in std::fs::read_dir(&secrets).with_context(|| format!("listing {}", secrets.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(format!("{SECRETS_DIR}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    for name in &names {
        let bytes = std::fs::read(data_dir.join(name)).with_context(|| format!("reading {name}"))?;
        files::write_private(&dest.join(name), &bytes)?;
    }
    names.push(DATABASE.to_owned());
    let mut manifest = Manifest {
        format: FORMAT.into(),
        created_at: rfc3339_now(),
        kek: material.kek.id().to_owned(),
        files: BTreeMap::new(),
    };
    for name in names {
        let digest = digest_of(&dest.join(&name))?;
        manifest.files.insert(name, digest);
    }
    let text = serde_json::to_vec_pretty(&manifest)?;
    files::write_private(&dest.join(MANIFEST), &text)?;
    Ok(manifest)
}

/// Puts the backup in `src` into the new data directory `data_dir`, after
/// checking every file against the manifest and that `kek` (the KEK the
/// gateway will run with) opens its key material. With `install_kek`, the
/// KEK read from `kek_file` is also written to `kek.key` in `data_dir`.
pub async fn restore(
    src: &Path,
    data_dir: &Path,
    kek_file: Option<&Path>,
    install_kek: bool,
) -> anyhow::Result<Manifest> {
    let text = std::fs::read(src.join(MANIFEST))
        .with_context(|| format!("{} is not a fhirgate backup (no {MANIFEST})", src.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text).with_context(|| format!("reading {MANIFEST}"))?;
    if manifest.format != FORMAT {
        bail!("{MANIFEST}: format {:?}, this gateway reads {FORMAT:?}", manifest.format);
    }
    for (name, want) in &manifest.files {
        if name.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            bail!("{MANIFEST} names {name:?}, which is not a path inside the backup");
        }
        if &digest_of(&src.join(name))? != want {
            bail!("{name} in the backup does not match its checksum: the backup is damaged");
        }
    }
    if data_dir.join(DATABASE).exists() {
        bail!(
            "{} holds a gateway's data ({DATABASE}): restore into a new directory, or stop the gateway and move \
             this one away first",
            data_dir.display()
        );
    }
    refuse_non_empty(data_dir, "the data directory to restore into")?;

    // The KEK the gateway will run with must open what the backup sealed.
    let kek_path = kek_file.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join(vault::FILE_NAME));
    let kek = Kek::load(&kek_path, false).with_context(|| {
        format!(
            "the backup is sealed under key-encryption key {}: name it with --kek-file or {}",
            manifest.kek,
            vault::ENV
        )
    })?;
    if kek.id() != manifest.kek {
        bail!(
            "the backup is sealed under key-encryption key {}, and the one given is {}: give the KEK the backed-up \
             gateway ran with",
            manifest.kek,
            kek.id()
        );
    }

    // Assembled beside the target, checked, then put in place in one step.
    let staging = staging_dir(data_dir);
    let _ = std::fs::remove_dir_all(&staging);
    files::private_dir(&staging)?;
    let result = assemble(src, &staging, &manifest, install_kek.then_some(kek_path.as_path()), &kek).await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if data_dir.exists() {
        std::fs::remove_dir(data_dir).with_context(|| format!("replacing the empty {}", data_dir.display()))?;
    }
    std::fs::rename(&staging, data_dir)
        .with_context(|| format!("moving the restored state to {}", data_dir.display()))?;
    Ok(manifest)
}

async fn assemble(
    src: &Path,
    staging: &Path,
    manifest: &Manifest,
    install_kek: Option<&Path>,
    kek: &Kek,
) -> anyhow::Result<()> {
    for name in manifest.files.keys() {
        let target = staging.join(name);
        if let Some(parent) = target.parent() {
            files::private_dir(parent)?;
        }
        let bytes = std::fs::read(src.join(name)).with_context(|| format!("reading {name}"))?;
        files::write_private(&target, &bytes)?;
    }
    if let Some(path) = install_kek {
        let text = files::read_private(path)?;
        files::write_private(&staging.join(vault::FILE_NAME), text.trim().as_bytes())?;
    }
    // The keys must go with the database, and every signing key must open.
    let store = Store::open_dir(staging).await?;
    let material = KeyMaterial::open_with(&store, staging, kek.clone()).await.context("the restored key material")?;
    crate::oauth::key_store::load_ring(&store, &material.kek, jsonwebtoken::Algorithm::ES256, u64::MAX / 4)
        .await
        .context("the restored signing keys")?;
    store.pool().close().await;
    Ok(())
}

fn staging_dir(data_dir: &Path) -> PathBuf {
    let name = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    data_dir.with_file_name(format!(".{name}.restoring-{}", std::process::id()))
}

fn refuse_non_empty(dir: &Path, what: &str) -> anyhow::Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{what}, {}, is not empty: name a new directory", dir.display());
    }
    Ok(())
}

fn digest_of(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(fhirgate_core::digest::sha256_hex(&bytes))
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| fhirgate_core::clock::now_seconds().to_string())
}
