//! Fresh secrets: client secrets, and the random keys the gateway keeps.

use base64::Engine as _;
use rand_core::RngCore as _;

/// A new client secret: 256 bits from the operating system's CSPRNG,
/// base64url without padding (43 characters).
pub fn generate_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_key())
}

/// 32 bytes from the operating system's CSPRNG.
pub fn random_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (super::generate_secret(), super::generate_secret());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
