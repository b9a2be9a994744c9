//! The pooled HTTP clients providers are reached with, and their trust: the
//! system's roots, plus a provider's own extra CA when its directory entry
//! names one; and the gateway's client certificate for a provider that
//! requires mutual TLS.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{ClientCert, UpstreamError};
use crate::outbound::{Checked, OutboundPolicy, Resolver};

/// One pool of connections. GETs send an empty `Full`, which hyper sends
/// without a body or `Content-Length`; token requests send a form.
pub(super) type HttpClient = Client<HttpsConnector<Checked<HttpConnector<Resolver>>>, Full<Bytes>>;

/// Idle connections are kept this long: under the 120 s most servers and
/// load balancers allow, so the gateway closes them before the far end does.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Reads and checks a PEM file of extra trust anchors.
pub(super) fn load_extra_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamError> {
    let pem = fhirgate_core::vault::read_provider_file(path).map_err(|e| UpstreamError::Tls(format!("{e:#}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UpstreamError::Tls(format!("{} is not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(UpstreamError::Tls(format!("{} holds no PEM certificate", path.display())));
    }
    let mut probe = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        probe.add(cert.clone()).map_err(|e| {
            UpstreamError::Tls(format!("certificate {} in {} is not a usable trust anchor: {e}", i + 1, path.display()))
        })?;
    }
    Ok(certs)
}

/// Reads a client certificate chain and its key (plain PEM, or sealed under
/// the key-encryption key), checking that they are a pair.
pub(super) fn load_client_cert(
    files: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), UpstreamError> {
    let tls = |e: String| UpstreamError::Tls(e);
    let pem = fhirgate_core::vault::read_provider_file(&files.cert).map_err(|e| tls(format!("{e:#}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("{} is not a PEM certificate file: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(tls(format!("{} holds no PEM certificate", files.cert.display())));
    }
    let key = fhirgate_core::vault::read_credential(&files.key).map_err(|e| tls(format!("{e:#}")))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|_| tls(format!("{} holds no PEM private key", files.key.display())))?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(certs.clone(), key.clone_key(), &provider)
        .map_err(|e| tls(format!("{} and {} are not a pair: {e}", files.cert.display(), files.key.display())))?;
    Ok((certs, key))
}

/// A client whose connects give up after `connect_timeout`, that trusts
/// the system's roots plus those in `extra_ca`, presents `client_cert` when
/// the provider asks for one, and connects only to addresses `outbound`
/// permits (anywhere without one).
pub(super) fn client(
    connect_timeout: Duration,
    extra_ca: Option<&Path>,
    client_cert: Option<&ClientCert>,
    outbound: Option<Arc<OutboundPolicy>>,
) -> Result<HttpClient, UpstreamError> {
    let mut roots = RootCertStore::clone(&native_roots());
    if let Some(path) = extra_ca {
        for cert in load_extra_ca(path)? {
            roots.add(cert).map_err(|e| UpstreamError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    // The provider is named explicitly so that the choice does not depend on
    // which crypto features other crates happen to switch on in rustls.
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client_cert {
        Some(files) => {
            let (certs, key) = load_client_cert(files)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| UpstreamError::Tls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };

    let mut http = HttpConnector::new_with_resolver(Resolver { policy: outbound.clone() });
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(Checked { inner: http, policy: outbound });
    Ok(Client::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE).build(https))
}

/// The system's trust anchors, read once: reading them means parsing a few
/// hundred certificates from disk.
fn native_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "could not read some system CA roots");
            }
            let mut roots = RootCertStore::empty();
            let (valid, invalid) = roots.add_parsable_certificates(found.certs);
            if valid == 0 {
                tracing::warn!(invalid, "no system CA roots found; HTTPS providers without an extra CA will fail");
            }
            Arc::new(roots)
        })
        .clone()
}
