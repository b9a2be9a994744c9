//! Key material at rest: sealed with an AEAD (ChaCha20-Poly1305) under a
//! key-encryption key (KEK) that never sits in the database.
//!
//! The KEK comes from the environment (`FHIRGATE_KEK`, 64 hexadecimal
//! characters) or from a file private to the gateway's user (`kek_file`,
//! by default `kek.key` in the data directory, created on first start).
//! [`KeyWrap`] is the seam for a key-management service: a KEK is anything
//! that seals and opens small secrets under a stable id.
//!
//! A sealed secret is text, `fhirgate-sealed:v1:<kek id>:<base64url of
//! nonce, ciphertext and tag>`, bound to its purpose (`pepper.key`,
//! `signing-key:<kid>`, …) as associated data, so a sealed value moved to
//! another place does not open there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};

/// The environment variable that may carry the KEK (64 hexadecimal characters).
pub const ENV: &str = "FHIRGATE_KEK";
/// The KEK file's name in the data directory when no `kek_file` is set.
pub const FILE_NAME: &str = "kek.key";
const PREFIX: &str = "fhirgate-sealed:v1:";

/// What seals and opens key material: the local KEK, or a key-management
/// service behind the same calls.
pub trait KeyWrap: Send + Sync {
    /// A stable, non-secret identifier of the key (stored beside what it sealed).
    fn id(&self) -> &str;
    /// Seals `plain` for `purpose`.
    fn seal(&self, purpose: &str, plain: &[u8]) -> anyhow::Result<Vec<u8>>;
    /// Opens what [`KeyWrap::seal`] sealed for the same `purpose`.
    fn open(&self, purpose: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>>;
}

/// The key-encryption key a gateway seals its key material under.
#[derive(Clone)]
pub struct Kek {
    wrap: Arc<dyn KeyWrap>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.id()).finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from 32 key bytes.
    pub fn from_bytes(key: &[u8; 32]) -> Kek {
        Kek { wrap: Arc::new(LocalKek::new(key)) }
    }

    /// A KEK behind another [`KeyWrap`] (a key-management service).
    pub fn from_wrap(wrap: Arc<dyn KeyWrap>) -> Kek {
        Kek { wrap }
    }

    /// A fresh random KEK, for gateways that keep nothing across restarts.
    pub fn random() -> Kek {
        Kek::from_bytes(&crate::secret::random_key())
    }

    /// The KEK's stable identifier.
    pub fn id(&self) -> &str {
        self.wrap.id()
    }

    /// Seals `plain` for `purpose`, as text.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> anyhow::Result<String> {
        let sealed = self.wrap.seal(purpose, plain)?;
        Ok(format!("{PREFIX}{}:{}", self.id(), URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens text sealed by [`Kek::seal`] for `purpose`; the error says when
    /// it was sealed under another KEK.
    pub fn open(&self, purpose: &str, text: &str) -> anyhow::Result<Vec<u8>> {
        let Some((id, body)) = parse(text.trim()) else {
            bail!("{purpose}: not sealed key material");
        };
        if id != self.id() {
            bail!(
                "{purpose} is sealed under key-encryption key {id}, and this gateway's is {}: \
                 give it the KEK this data was sealed with ({ENV} or the kek_file)",
                self.id()
            );
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| anyhow::anyhow!("{purpose}: damaged sealed text"))?;
        self.wrap.open(purpose, &bytes).with_context(|| format!("{purpose}: does not open (damaged or altered)"))
    }

    /// Loads the KEK from [`ENV`] when set, else from `file`; creates the
    /// file (mode 0600) only when `create` is true. Without one, the error
    /// names what is missing and what it is needed for.
    pub fn load(file: &Path, create: bool) -> anyhow::Result<Kek> {
        if let Ok(hex_text) = std::env::var(ENV) {
            return Kek::parse(&hex_text).context(ENV);
        }
        if file.exists() {
            let text = crate::files::read_private(file)?;
            return Kek::parse(&text).with_context(|| format!("{}", file.display()));
        }
        if !create {
            bail!(
                "the key-encryption key is missing: {} does not exist and {ENV} is not set, \
                 but this data directory's keys are sealed under one; restore the KEK it was made with",
                file.display()
            );
        }
        let key = crate::secret::random_key();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            crate::files::private_dir(dir)?;
        }
        crate::files::write_private(file, hex::encode(key).as_bytes())?;
        Ok(Kek::from_bytes(&key))
    }

    fn parse(hex_text: &str) -> anyhow::Result<Kek> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(hex_text.trim(), &mut key)
            .map_err(|_| anyhow::anyhow!("expected 64 hexadecimal characters"))?;
        Ok(Kek::from_bytes(&key))
    }
}

/// The purpose provider credentials are sealed for.
pub const PROVIDER_SECRET: &str = "provider-secret";

/// The KEKs this process has opened, by id: what opens a sealed credential
/// file wherever it is read.
fn known() -> &'static std::sync::RwLock<Vec<Kek>> {
    static KNOWN: std::sync::OnceLock<std::sync::RwLock<Vec<Kek>>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Makes `kek` one that [`open_known`] uses.
pub fn remember(kek: &Kek) {
    let mut known = known().write().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| k.id() == kek.id()) {
        known.push(kek.clone());
    }
}

/// Opens `text` with the remembered KEK it was sealed under.
pub fn open_known(purpose: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let id = sealed_by(text).ok_or_else(|| anyhow::anyhow!("not sealed key material"))?;
    let kek = known().read().unwrap_or_else(|e| e.into_inner()).iter().find(|k| k.id() == id).cloned();
    match kek {
        Some(kek) => kek.open(purpose, text),
        None => bail!("sealed under key-encryption key {id}, which this gateway does not have"),
    }
}

/// Reads a credential file: private to the gateway's user, plain or sealed
/// (for [`PROVIDER_SECRET`]) under a remembered KEK; trimmed, not empty.
pub fn read_credential(path: &Path) -> anyhow::Result<String> {
    let text = match path.strip_prefix(STORED_DIR).ok().and_then(|n| n.to_str()) {
        Some(name) => stored(name)?,
        None => crate::files::read_private(path)?,
    };
    let text = if is_sealed(&text) {
        String::from_utf8(open_known(PROVIDER_SECRET, &text).with_context(|| format!("{}", path.display()))?)
            .map_err(|_| anyhow::anyhow!("{}: not text", path.display()))?
    } else {
        text
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(text)
}

/// Where a gateway whose state is all in the database names the provider
/// credentials kept there: the credential file `NAME` of a declaration made
/// through the admin API or CLI is `STORED_DIR/NAME`, the sealed secret
/// `NAME` in the database.
pub const STORED_DIR: &str = "database:provider-secrets";

/// The sealed provider credentials kept in the database, by name, as last
/// loaded with the directory.
static STORED: std::sync::RwLock<Option<std::collections::HashMap<String, String>>> = std::sync::RwLock::new(None);

/// Replaces the credentials kept in the database, as loaded: (name, sealed).
pub fn set_stored(secrets: Vec<(String, String)>) {
    *STORED.write().unwrap_or_else(|e| e.into_inner()) = Some(secrets.into_iter().collect());
}

/// The bytes of a provider's file: one kept in the database (named under
/// [`STORED_DIR`]), opened, or the file itself.
pub fn read_provider_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    match path.strip_prefix(STORED_DIR).ok().and_then(|n| n.to_str()) {
        Some(name) => {
            let sealed = stored(name)?;
            open_known(PROVIDER_SECRET, &sealed).with_context(|| format!("{}", path.display()))
        }
        None => std::fs::read(path).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The sealed credential `name` kept in the database.
fn stored(name: &str) -> anyhow::Result<String> {
    let stored = STORED.read().unwrap_or_else(|e| e.into_inner());
    stored.as_ref().and_then(|s| s.get(name).cloned()).with_context(|| {
        format!(
            "no provider credential `{name}` is kept in the database: store it with \
             `fhirgate directory --database-url … seal-secret {name}` (the secret on standard input)"
        )
    })
}

/// Seals every plain file in `dir` (credentials written before they were
/// sealed) in place.
pub fn seal_plain_files(dir: &Path, kek: &Kek) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        // CA certificates are public; only credentials are sealed.
        if is_sealed(&text) || text.contains("-----BEGIN CERTIFICATE") {
            continue;
        }
        crate::files::check_private(&path)?;
        crate::files::replace_private(&path, kek.seal(PROVIDER_SECRET, text.trim().as_bytes())?.as_bytes())?;
    }
    Ok(())
}

/// Where the KEK is read from: `configured`, else `kek.key` in `data_dir`.
pub fn kek_path(data_dir: &Path, configured: Option<&Path>) -> PathBuf {
    configured.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join(FILE_NAME))
}

/// Whether `text` is sealed key material.
pub fn is_sealed(text: &str) -> bool {
    text.trim_start().starts_with(PREFIX)
}

/// The id of the KEK `text` was sealed under.
pub fn sealed_by(text: &str) -> Option<&str> {
    parse(text.trim()).map(|(id, _)| id)
}

fn parse(text: &str) -> Option<(&str, &str)> {
    text.strip_prefix(PREFIX)?.split_once(':')
}

/// The local KEK: ChaCha20-Poly1305 with a random 96-bit nonce per seal.
struct LocalKek {
    key: LessSafeKey,
    id: String,
    rng: SystemRandom,
}

impl LocalKek {
    fn new(key: &[u8; 32]) -> LocalKek {
        // The id identifies the key without revealing it.
        let id = crate::digest::sha256_hex([b"fhirgate kek id:".as_slice(), key].concat().as_slice())[..16].to_owned();
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        LocalKek { key: LessSafeKey::new(unbound), id, rng: SystemRandom::new() }
    }
}

impl KeyWrap for LocalKek {
    fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, purpose: &str, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| anyhow::anyhow!("no system randomness"))?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.as_bytes()), &mut data)
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    fn open(&self, purpose: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            bail!("too short");
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut data)
            .map_err(|_| anyhow::anyhow!("authentication failed"))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_only_with_its_kek_and_purpose() {
        let kek = Kek::from_bytes(&[7; 32]);
        let sealed = kek.seal("pepper.key", b"secret bytes").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(sealed_by(&sealed), Some(kek.id()));
        assert_eq!(kek.open("pepper.key", &sealed).unwrap(), b"secret bytes");
        assert!(kek.open("cursor.key", &sealed).is_err(), "bound to its purpose");
        let other = Kek::from_bytes(&[8; 32]);
        let e = other.open("pepper.key", &sealed).unwrap_err().to_string();
        assert!(e.contains(kek.id()) && e.contains(other.id()), "{e}");
        // A flipped byte does not open.
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(kek.open("pepper.key", std::str::from_utf8(&bytes).unwrap()).is_err());
    }

    #[test]
    fn credential_files_open_with_a_remembered_kek() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::random();
        let path = dir.path().join("api-key");
        crate::files::write_private(&path, b"the-api-key\n").unwrap();
        assert_eq!(read_credential(&path).unwrap(), "the-api-key");
        seal_plain_files(dir.path(), &kek).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(is_sealed(&text) && !text.contains("the-api-key"));
        assert!(read_credential(&path).is_err(), "not yet remembered");
        remember(&kek);
        assert_eq!(read_credential(&path).unwrap(), "the-api-key");
    }

    #[test]
    fn provider_files_kept_in_the_database_open_by_name() {
        let kek = Kek::from_bytes(&[11; 32]);
        remember(&kek);
        let sealed = kek.seal(PROVIDER_SECRET, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        set_stored(vec![
            ("hospital-ca.pem".into(), sealed),
            ("api.key".into(), kek.seal(PROVIDER_SECRET, b" k \n").unwrap()),
        ]);
        let stored = Path::new(STORED_DIR);
        assert_eq!(read_provider_file(&stored.join("hospital-ca.pem")).unwrap(), b"-----BEGIN CERTIFICATE-----\n");
        assert_eq!(read_credential(&stored.join("api.key")).unwrap(), "k");
        let e = format!("{:#}", read_credential(&stored.join("missing.key")).unwrap_err());
        assert!(e.contains("seal-secret missing.key"), "{e}");
        assert!(read_provider_file(Path::new("/nonexistent/ca.pem")).is_err());
    }

    #[test]
    fn a_kek_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.key");
        assert!(Kek::load(&path, false).is_err(), "not created unless asked");
        let kek = Kek::load(&path, true).unwrap();
        assert_eq!(Kek::load(&path, false).unwrap().id(), kek.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(Kek::load(&path, false).unwrap_err().to_string().contains("chmod 600"));
        }
    }
}
