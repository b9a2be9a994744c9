//! `fhirgate secret`: a fresh client secret and its digest for gateway.toml.

use fhirgate_core::digest::sha256_hex;

pub fn run() -> anyhow::Result<()> {
    let secret = fhirgate_core::secret::generate_secret();
    fhirgate_core::say!("client_secret = {secret}");
    fhirgate_core::say!("secret_sha256 = \"{}\"", sha256_hex(secret.as_bytes()));
    Ok(())
}
