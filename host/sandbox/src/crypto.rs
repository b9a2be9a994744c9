//! The `crypto` import: signature checks done natively for modules, so a
//! token validator need not carry (or be as slow as) its own crypto.

use crate::bindings::crypto::PublicKey;

/// Native signature verification for modules (the `crypto` import), with
/// `ring`'s assembly-optimised primitives: asymmetric JOSE algorithms only;
/// anything malformed verifies as false.
pub fn verify_signature(alg: &str, key: PublicKey, message: &[u8], signature: &[u8]) -> bool {
    use ring::signature as sig;
    let rsa_params: Option<&'static sig::RsaParameters> = match alg {
        "RS256" => Some(&sig::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Some(&sig::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Some(&sig::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Some(&sig::RSA_PSS_2048_8192_SHA256),
        "PS384" => Some(&sig::RSA_PSS_2048_8192_SHA384),
        "PS512" => Some(&sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    };
    match (alg, key, rsa_params) {
        ("ES256", PublicKey::Der(point), _) => {
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point).verify(message, signature).is_ok()
        }
        ("ES384", PublicKey::Der(point), _) => {
            sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point).verify(message, signature).is_ok()
        }
        (_, PublicKey::Rsa((n, e)), Some(params)) => {
            sig::RsaPublicKeyComponents { n: &n, e: &e }.verify(params, message, signature).is_ok()
        }
        (_, PublicKey::Der(der), Some(params)) => {
            sig::UnparsedPublicKey::new(params, der).verify(message, signature).is_ok()
        }
        _ => false,
    }
}
