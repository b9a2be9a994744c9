//! The gateway's token signing keys (ES256 on P-256 by default, RS256 on
//! request), the key ring of the active key and the retired keys still
//! published, and the public JWK Set.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fhirgate_core::files::write_private;
use fhirgate_core::vault::{self, Kek};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand_core::OsRng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A signing key with its key id (the RFC 7638 thumbprint of its public JWK).
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    /// For ES256: `ring`'s key pair, several times faster than the pure-Rust
    /// signer behind `encoding`.
    ecdsa: Option<ring::signature::EcdsaKeyPair>,
    /// PKCS#8 PEM of the private key, for the store. Never logged.
    private_pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_jwk: Value,
}

impl SigningKey {
    /// A fresh P-256 key from the operating system's CSPRNG.
    pub fn generate() -> anyhow::Result<SigningKey> {
        Self::from_secret(SecretKey::random(&mut OsRng))
    }

    /// A fresh key for `alg` (ES256, or RS256 with a 2048-bit modulus).
    pub fn generate_for(alg: Algorithm) -> anyhow::Result<SigningKey> {
        match alg {
            Algorithm::ES256 => Self::generate(),
            Algorithm::RS256 => {
                let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).context("generating an RSA key")?;
                let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF)
                    .map_err(|e| anyhow::anyhow!("encoding the RSA key: {e}"))?;
                Self::from_rsa_pem(&pem)
            }
            other => anyhow::bail!("signing with {other:?} is not supported; use ES256 or RS256"),
        }
    }

    /// A key from its stored form.
    pub fn from_pem(alg: Algorithm, pem: &str) -> anyhow::Result<SigningKey> {
        match alg {
            Algorithm::ES256 => Self::from_secret(
                SecretKey::from_pkcs8_pem(pem).map_err(|e| anyhow::anyhow!("not a PKCS#8 P-256 key: {e}"))?,
            ),
            Algorithm::RS256 => Self::from_rsa_pem(pem),
            other => anyhow::bail!("signing with {other:?} is not supported"),
        }
    }

    fn from_rsa_pem(pem: &str) -> anyhow::Result<SigningKey> {
        use rsa::traits::PublicKeyParts as _;
        let key: rsa::RsaPrivateKey = rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| anyhow::anyhow!("not a PKCS#8 RSA key: {e}"))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Ok(SigningKey {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the RSA key")?,
            decoding: DecodingKey::from_rsa_components(&n, &e).context("the RSA key's public half")?,
            public_jwk: json!({ "kty": "RSA", "n": n, "e": e, "kid": kid, "alg": "RS256", "use": "sig" }),
            kid,
            alg: Algorithm::RS256,
            ecdsa: None,
            private_pem: pem.to_owned(),
        })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The private key as PKCS#8 PEM, for the store only.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// Loads the PKCS#8 PEM key at `path`, creating it (mode 0600) if
    /// absent. With a `kek`, the file is kept sealed under it (a plain one
    /// is sealed in place); without one, it must be plain.
    pub fn load_or_create(path: &Path, kek: Option<&Kek>) -> anyhow::Result<SigningKey> {
        const PURPOSE: &str = "signing-key-file";
        if path.exists() {
            let text = fhirgate_core::files::read_private(path)?;
            let pem = match kek {
                Some(kek) if vault::is_sealed(&text) => String::from_utf8(kek.open(PURPOSE, &text)?)
                    .map_err(|_| anyhow::anyhow!("{}: not PEM", path.display()))?,
                None if vault::is_sealed(&text) => anyhow::bail!(
                    "{} is sealed: give the gateway its key-encryption key ({} or kek_file)",
                    path.display(),
                    vault::ENV
                ),
                Some(kek) => {
                    fhirgate_core::files::replace_private(path, kek.seal(PURPOSE, text.as_bytes())?.as_bytes())?;
                    text
                }
                None => text,
            };
            let secret = SecretKey::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: not a PKCS#8 P-256 private key: {e}", path.display()))?;
            return Self::from_secret(secret);
        }
        let secret = SecretKey::random(&mut OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        match kek {
            Some(kek) => write_private(path, kek.seal(PURPOSE, pem.as_bytes())?.as_bytes())?,
            None => write_private(path, pem.as_bytes())?,
        }
        tracing::info!(path = %path.display(), "created a new token signing key");
        Self::from_secret(secret)
    }

    fn from_secret(secret: SecretKey) -> anyhow::Result<SigningKey> {
        let der = secret.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?;
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let point = secret.public_key().to_encoded_point(false);
        let x = URL_SAFE_NO_PAD.encode(point.x().context("P-256 point without x")?);
        let y = URL_SAFE_NO_PAD.encode(point.y().context("P-256 point without y")?);
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let decoding = DecodingKey::from_ec_components(&x, &y).context("the signing key's public half")?;
        let public_jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "alg": "ES256", "use": "sig",
        });
        let private_pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?
            .to_string();
        let ecdsa = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .ok();
        Ok(SigningKey { kid, alg: Algorithm::ES256, ecdsa, private_pem, encoding, decoding, public_jwk })
    }

    /// A signature over `message`, base64url: the third part of a compact
    /// JWS whose first two parts are `message`.
    pub fn sign_raw(&self, message: &[u8]) -> anyhow::Result<String> {
        if let Some(pair) = &self.ecdsa {
            let sig = pair
                .sign(&ring::rand::SystemRandom::new(), message)
                .map_err(|_| anyhow::anyhow!("ES256 signing failed"))?;
            return Ok(URL_SAFE_NO_PAD.encode(sig.as_ref()));
        }
        jsonwebtoken::crypto::sign(message, &self.encoding, self.alg).context("signing")
    }

    /// The public half, for checking tokens this gateway issued.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK Set document with this key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk] })
    }

    /// Signs `claims` as a compact JWS with `kid` and `typ: at+jwt` (RFC 9068).
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let signature = self.sign_raw(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{signature}"))
    }
}

/// The key that signs, and every key whose tokens may still be alive.
pub struct KeyRing {
    active: Arc<SigningKey>,
    /// The active key first, then retired keys still published.
    published: Vec<Arc<SigningKey>>,
}

impl KeyRing {
    /// A ring of one key.
    pub fn single(key: SigningKey) -> Self {
        let key = Arc::new(key);
        KeyRing { active: key.clone(), published: vec![key] }
    }

    /// A ring signing with `active` and also publishing `retired`.
    pub fn new(active: SigningKey, retired: Vec<SigningKey>) -> Self {
        let active = Arc::new(active);
        let published = std::iter::once(active.clone()).chain(retired.into_iter().map(Arc::new)).collect();
        KeyRing { active, published }
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// A published key by `kid`.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.published.iter().find(|k| k.kid == kid).map(|k| k.as_ref())
    }

    /// The JWK Set of every published key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_sealed_under_a_kek_and_opens_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::random();
        let sealed = dir.path().join("sealed.pem");
        let kid = SigningKey::load_or_create(&sealed, Some(&kek)).unwrap().kid().to_owned();
        assert!(vault::is_sealed(&std::fs::read_to_string(&sealed).unwrap()));
        assert_eq!(SigningKey::load_or_create(&sealed, Some(&kek)).unwrap().kid(), kid);
        assert!(SigningKey::load_or_create(&sealed, None).err().unwrap().to_string().contains("sealed"));
        assert!(SigningKey::load_or_create(&sealed, Some(&Kek::random())).is_err());

        // A plain key file is sealed in place once a KEK is given.
        let plain = dir.path().join("plain.pem");
        let kid = SigningKey::load_or_create(&plain, None).unwrap().kid().to_owned();
        assert!(std::fs::read_to_string(&plain).unwrap().contains("PRIVATE KEY"));
        assert_eq!(SigningKey::load_or_create(&plain, Some(&kek)).unwrap().kid(), kid);
        assert!(vault::is_sealed(&std::fs::read_to_string(&plain).unwrap()));
    }
}
