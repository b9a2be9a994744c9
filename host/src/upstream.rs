//! The pooled HTTP client the gateway forwards to providers with: HTTP/1.1
//! and HTTP/2, HTTPS through rustls with the system's roots, a time budget per
//! exchange and a cap on response size.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Why an exchange with a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the provider could not be reached")]
    Connect,
    #[error("the provider did not answer within {0} ms")]
    Timeout(u128),
    #[error("the provider's answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the provider's answer was cut off or malformed")]
    Protocol,
    #[error("the upstream URL is invalid")]
    BadUrl,
}

/// A provider's answer, read in full.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The shared client; cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    max_body: usize,
}

/// Connect budget: a provider that cannot complete a TCP (and TLS) handshake
/// in 5 s is down for the app's purposes, whatever its response budget.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Upstream {
    pub fn new(max_body: usize) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no system CA roots found; HTTPS providers will fail verification");
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let https = builder.https_or_http().enable_all_versions().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(https);
        Upstream { client, max_body }
    }

    /// `GET url` with `headers`, within `timeout` for the whole exchange.
    pub async fn get(
        &self,
        url: &str,
        headers: HeaderMap,
        accept: &'static str,
        timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri: http::Uri = url.parse().map_err(|_| UpstreamError::BadUrl)?;
        let mut req =
            Request::builder().method(Method::GET).uri(uri).body(Empty::new()).map_err(|_| UpstreamError::BadUrl)?;
        *req.headers_mut() = headers;
        req.headers_mut().insert(ACCEPT, HeaderValue::from_static(accept));
        req.headers_mut().insert(USER_AGENT, HeaderValue::from_static(concat!("fhirgate/", env!("CARGO_PKG_VERSION"))));

        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| if e.is_connect() { UpstreamError::Connect } else { UpstreamError::Protocol })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                        UpstreamError::TooLarge(self.max_body)
                    } else {
                        UpstreamError::Protocol
                    }
                })?
                .to_bytes();
            Ok(UpstreamResponse { status, body })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| UpstreamError::Timeout(timeout.as_millis()))?
    }
}
