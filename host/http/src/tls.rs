//! The HTTPS listener's TLS: rustls with TLS 1.2 and 1.3, HTTP/2 or
//! HTTP/1.1 chosen by ALPN, and the certificate chain and private key
//! reloaded from their files when they change — new handshakes get the new
//! certificate, connections already open keep theirs.
//!
//! A changed pair is taken only whole and consistent (the key matches the
//! certificate): a renewal that writes the two files one after the other is
//! picked up on the next look, and until then the old pair is served.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Where a listener's certificate comes from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), private to the gateway's user.
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; set, a client
    /// without one is refused in the handshake.
    pub client_ca: Option<PathBuf>,
}

/// A TLS acceptor whose certificate follows its files.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Reloading>,
}

impl Tls {
    /// Loads `files` (failing when they do not make a usable pair).
    pub fn new(files: &TlsFiles) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, stamp) = load(&files.cert, &files.key, &provider)?;
        let resolver = Arc::new(Reloading {
            cert: files.cert.clone(),
            key: files.key.clone(),
            provider: provider.clone(),
            current: ArcSwap::from_pointee(key),
            stamp: Mutex::new(stamp),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS versions")?;
        let mut config = match &files.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .context("the client CA")?;
                builder.with_client_cert_verifier(verifier).with_cert_resolver(resolver.clone())
            }
            None => builder.with_no_client_auth().with_cert_resolver(resolver.clone()),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), resolver })
    }

    /// Reloads the certificate and key when their files changed and make a
    /// consistent pair; a bad pair is reported and the current one kept.
    /// Whether a new pair was taken.
    pub fn reload_if_changed(&self) -> bool {
        self.resolver.reload_if_changed()
    }

    /// Completes the handshake on `io`.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.acceptor.accept(io).await
    }
}

struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// What the files held when last taken (or last refused).
    stamp: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading").field("cert", &self.cert).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl Reloading {
    fn reload_if_changed(&self) -> bool {
        let Ok(stamp) = stamp_of(&self.cert, &self.key) else {
            return false;
        };
        let mut last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if *last == stamp {
            return false;
        }
        match load(&self.cert, &self.key, &self.provider) {
            Ok((key, stamp)) => {
                self.current.store(Arc::new(key));
                *last = stamp;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Looked at again only when the files change once more.
                *last = stamp;
                tracing::warn!(error = %format!("{e:#}"), "TLS certificate not reloaded; serving the current one");
                false
            }
        }
    }
}

/// What identifies the files' contents: their digest together.
fn stamp_of(cert: &Path, key: &Path) -> anyhow::Result<Vec<u8>> {
    let mut both = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    both.extend(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
    Ok(fhirgate_core::digest::sha256_hex(&both).into_bytes())
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<(CertifiedKey, Vec<u8>)> {
    let stamp = stamp_of(cert, key)?;
    let chain = read_certs(cert)?;
    fhirgate_core::files::check_private(key)?;
    let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).with_context(|| format!("{}: no PEM private key", key.display()))?;
    let certified = CertifiedKey::from_der(chain, der, provider)
        .map_err(|e| anyhow::anyhow!("{} and {} are not a pair: {e}", cert.display(), key.display()))?;
    Ok((certified, stamp))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A connection's stream: plain TCP, or TLS over it.
pub enum MaybeTls<IO> {
    Plain(IO),
    Tls(Box<tokio_rustls::server::TlsStream<IO>>),
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(io) => io.is_write_vectored(),
            MaybeTls::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTls::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
