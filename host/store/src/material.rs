//! The key material that goes with a database: the key-encryption key its
//! secrets are sealed under, the secret-hash key (`pepper.key`) and the
//! cursor key (`cursor.key`), both kept sealed beside the database — in the
//! data directory, or for a database named by URL (shared by replicas) in
//! the database itself, so that a replica needs nothing but its KEK.
//!
//! The database records the KEK's id and a check value of each key, so a
//! gateway given a database without its keys (a partial restore, another
//! gateway's KEK) stops at start-up and says which file is wrong.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use fhirgate_core::files;
use fhirgate_core::vault::{self, Kek};
use sqlx::Row as _;

use super::Store;

/// The secret-hash key's file in the data directory.
pub const PEPPER_FILE: &str = "pepper.key";
/// The cursor key's file in the data directory.
pub const CURSOR_FILE: &str = "cursor.key";

/// A data directory's key material, opened.
pub struct KeyMaterial {
    pub kek: Kek,
    /// The registry's secret-hash key.
    pub pepper: [u8; 32],
    /// The paging cursors' key.
    pub cursor: [u8; 32],
}

impl KeyMaterial {
    /// Opens the key material of the database in `store`, kept in
    /// `data_dir`, with the KEK from `FHIRGATE_KEK` or `kek_file` (default
    /// `kek.key` in `data_dir`). Missing keys are created only for a
    /// database that has never had them.
    pub async fn open(store: &Store, data_dir: &Path, kek_file: Option<&Path>) -> anyhow::Result<KeyMaterial> {
        let checks = checks(store).await?;
        let kek = Kek::load(&vault::kek_path(data_dir, kek_file), !checks.contains_key("kek"))?;
        Self::open_with(store, data_dir, kek).await
    }

    /// As [`KeyMaterial::open`], with the KEK already loaded.
    pub async fn open_with(store: &Store, data_dir: &Path, kek: Kek) -> anyhow::Result<KeyMaterial> {
        let checks = checks(store).await?;
        match checks.get("kek") {
            Some(id) if id != kek.id() => bail!(
                "this database's key material is sealed under key-encryption key {id}, and the one given \
                 ({} or the kek_file) is {}: give the gateway the KEK the database was made with",
                vault::ENV,
                kek.id()
            ),
            Some(_) => {}
            None => record(store, "kek", kek.id()).await?,
        }
        vault::remember(&kek);
        let pepper = key_file(store, &checks, &kek, data_dir, PEPPER_FILE, "client secrets are hashed with it").await?;
        let cursor = key_file(store, &checks, &kek, data_dir, CURSOR_FILE, "page links are sealed with it").await?;
        Ok(KeyMaterial { kek, pepper, cursor })
    }
}

impl KeyMaterial {
    /// Opens the key material of the database at a URL: the KEK from
    /// `FHIRGATE_KEK` or `kek_file` (created there only for a database that
    /// has never had one), the other keys sealed in the database (created by
    /// whichever replica comes first).
    pub async fn open_in_database(store: &Store, kek_file: Option<&Path>) -> anyhow::Result<KeyMaterial> {
        let checks = checks(store).await?;
        let kek = match kek_file {
            // `FHIRGATE_KEK` first, then the file.
            Some(file) => Kek::load(file, !checks.contains_key("kek"))?,
            None if std::env::var_os(vault::ENV).is_some() => Kek::load(Path::new(""), false)?,
            None => bail!(
                "a gateway whose state is at a database URL needs the key-encryption key every replica shares: \
                 set {} (64 hexadecimal characters) or kek_file",
                vault::ENV
            ),
        };
        if !checks.contains_key("kek") {
            record(store, "kek", kek.id()).await?;
        }
        // Read again: another replica may have recorded its KEK first.
        if let Some(id) = self::checks(store).await?.get("kek")
            && id != kek.id()
        {
            bail!(
                "this database's key material is sealed under key-encryption key {id}, and the one given \
                 ({} or the kek_file) is {}: give every replica the KEK the database was made with",
                vault::ENV,
                kek.id()
            );
        }
        vault::remember(&kek);
        let pepper = sealed_key(store, &kek, PEPPER_FILE).await?;
        let cursor = sealed_key(store, &kek, CURSOR_FILE).await?;
        Ok(KeyMaterial { kek, pepper, cursor })
    }
}

/// The key `name` sealed in the database; a fresh one is stored first when
/// there is none (if another replica stores its own at the same moment,
/// both use the one that was stored).
async fn sealed_key(store: &Store, kek: &Kek, name: &str) -> anyhow::Result<[u8; 32]> {
    let fresh = fhirgate_core::secret::random_key();
    sqlx::query("INSERT INTO sealed_keys (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(kek.seal(name, &fresh)?)
        .execute(store.pool())
        .await
        .with_context(|| format!("storing {name}"))?;
    let sealed: String = sqlx::query_scalar("SELECT sealed FROM sealed_keys WHERE name = $1")
        .bind(name)
        .fetch_one(store.pool())
        .await
        .with_context(|| format!("reading {name}"))?;
    let plain = kek.open(name, &sealed).with_context(|| format!("opening {name} from the database"))?;
    plain.try_into().map_err(|_| anyhow::anyhow!("{name} in the database is not a 32-byte key"))
}

/// Opens (or, for a database that never had it, creates) the sealed key
/// file `name`; a plain-text key from an earlier version is sealed in place.
async fn key_file(
    store: &Store,
    checks: &HashMap<String, String>,
    kek: &Kek,
    data_dir: &Path,
    name: &str,
    why: &str,
) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(name);
    let mut key = [0u8; 32];
    if path.exists() {
        let text = files::read_private(&path)?;
        if vault::is_sealed(&text) {
            let plain = kek.open(name, &text)?;
            key = plain.try_into().map_err(|_| anyhow::anyhow!("{}: not a 32-byte key", path.display()))?;
        } else {
            hex::decode_to_slice(text.trim(), &mut key)
                .map_err(|_| anyhow::anyhow!("{}: expected 64 hexadecimal characters", path.display()))?;
            files::replace_private(&path, kek.seal(name, &key)?.as_bytes())?;
        }
    } else if checks.contains_key(name) {
        bail!(
            "{} is missing, but this database was made with it ({why}): restore the {name} backed up with the \
             database",
            path.display()
        );
    } else {
        key = fhirgate_core::secret::random_key();
        files::private_dir(data_dir)?;
        files::write_private(&path, kek.seal(name, &key)?.as_bytes())?;
    }
    let check = check_value(name, &key);
    match checks.get(name) {
        Some(c) if *c != check => bail!(
            "{} does not belong to this database ({why}): restore the {name} backed up with the database",
            path.display()
        ),
        Some(_) => {}
        None => record(store, name, &check).await?,
    }
    Ok(key)
}

/// A value that tells whether a key is the one recorded, without revealing it.
fn check_value(name: &str, key: &[u8; 32]) -> String {
    let text = [format!("fhirgate key check:{name}:").as_bytes(), key.as_slice()].concat();
    fhirgate_core::digest::sha256_hex(&text)[..32].to_owned()
}

async fn checks(store: &Store) -> anyhow::Result<HashMap<String, String>> {
    let rows = sqlx::query("SELECT name, check_value FROM key_material")
        .fetch_all(store.pool())
        .await
        .context("reading key_material")?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("check_value")?))).collect()
}

async fn record(store: &Store, name: &str, value: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO key_material (name, check_value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(store.pool())
        .await
        .context("recording key_material")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(dir: &Path) -> anyhow::Result<KeyMaterial> {
        let store = Store::open_dir(dir).await?;
        KeyMaterial::open(&store, dir, None).await
    }

    /// A data directory inside a fresh temporary one (which is not private).
    fn data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        (tmp, dir)
    }

    #[tokio::test]
    async fn keys_are_sealed_and_must_match_their_database() {
        let (_tmp, dir) = data_dir();
        let dir = dir.as_path();
        let first = open(dir).await.unwrap();
        let again = open(dir).await.unwrap();
        assert_eq!((first.pepper, first.cursor), (again.pepper, again.cursor));
        let text = std::fs::read_to_string(dir.join(PEPPER_FILE)).unwrap();
        assert!(vault::is_sealed(&text) && !text.contains(&hex::encode(first.pepper)));

        // A pepper from elsewhere, a missing cursor key, another KEK: each named.
        let saved = std::fs::read(dir.join(PEPPER_FILE)).unwrap();
        std::fs::remove_file(dir.join(PEPPER_FILE)).unwrap();
        let e = format!("{:#}", open(dir).await.err().unwrap());
        assert!(e.contains("pepper.key is missing"), "{e}");
        files::write_private(&dir.join(PEPPER_FILE), first.kek.seal(PEPPER_FILE, &[1; 32]).unwrap().as_bytes())
            .unwrap();
        let e = format!("{:#}", open(dir).await.err().unwrap());
        assert!(e.contains("does not belong to this database"), "{e}");
        files::replace_private(&dir.join(PEPPER_FILE), &saved).unwrap();
        std::fs::remove_file(dir.join(vault::FILE_NAME)).unwrap();
        let e = format!("{:#}", open(dir).await.err().unwrap());
        assert!(e.contains("key-encryption key is missing"), "{e}");
    }

    #[tokio::test]
    async fn plain_keys_of_an_earlier_version_are_sealed_in_place() {
        let (_tmp, dir) = data_dir();
        let dir = dir.as_path();
        Store::open_dir(dir).await.unwrap();
        files::write_private(&dir.join(PEPPER_FILE), hex::encode([9u8; 32]).as_bytes()).unwrap();
        let m = open(dir).await.unwrap();
        assert_eq!(m.pepper, [9; 32]);
        assert!(vault::is_sealed(&std::fs::read_to_string(dir.join(PEPPER_FILE)).unwrap()));
        assert_eq!(open(dir).await.unwrap().pepper, [9; 32]);
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;

    crate::store_tests! {
        async fn keys_in_the_database_are_shared_sealed_and_need_their_kek(store) {
            let tmp = tempfile::tempdir().unwrap();
            let kek_file = tmp.path().join("kek.key");
            // Replicas starting together on a fresh database agree on one set.
            let (a, b) = tokio::join!(
                KeyMaterial::open_in_database(&store, Some(&kek_file)),
                KeyMaterial::open_in_database(&store, Some(&kek_file))
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!((a.pepper, a.cursor, a.kek.id()), (b.pepper, b.cursor, b.kek.id()));
            let sealed: Vec<String> = sqlx::query_scalar("SELECT sealed FROM sealed_keys ORDER BY name")
                .fetch_all(store.pool())
                .await
                .unwrap();
            assert_eq!(sealed.len(), 2);
            assert!(sealed.iter().all(|s| vault::is_sealed(s) && !s.contains(&hex::encode(a.pepper))));

            // Another KEK is refused, naming both; no KEK at all is explained.
            let other = tmp.path().join("other.key");
            files::write_private(&other, hex::encode([5u8; 32]).as_bytes()).unwrap();
            let e = format!("{:#}", KeyMaterial::open_in_database(&store, Some(&other)).await.err().unwrap());
            assert!(e.contains("sealed under key-encryption key") && e.contains(a.kek.id()), "{e}");
            std::fs::remove_file(&kek_file).unwrap();
            let e = format!("{:#}", KeyMaterial::open_in_database(&store, Some(&kek_file)).await.err().unwrap());
            assert!(e.contains("key-encryption key is missing"), "{e}");
        }
    }
}
