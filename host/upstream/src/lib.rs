//! fhirgate-upstream: the gateway's path to each provider. Pooled HTTP/1.1
//! and HTTP/2 clients over rustls (system roots plus the provider's own CA),
//! the provider's credentials, bounded retries, a circuit breaker, one time
//! budget per exchange and a cap on response size.
//!
//! State that outlives a request (connection pools, breakers, retry budgets,
//! cached tokens) is kept per provider id and starts afresh when that
//! provider's settings change.
//!
//! Layout:
//! - [`Upstream`]: the client, one per gateway, and its settings per provider;
//! - `auth`: how the gateway authenticates to a provider (a fixed header,
//!   or the provider's own client-credentials token, cached);
//! - `breaker`, `retry`: the circuit breaker and the retry budget;
//! - `tls`: the connectors, with a provider's own CA;
//! - [`reads`]: the reads a shaping module makes through the `upstream`
//!   import, behind the sandbox's [`fhirgate_sandbox::UpstreamReads`].

mod assertion;
mod auth;
mod breaker;
pub mod outbound;
mod retry;
mod tls;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONNECTION, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;

pub mod reads;

pub use assertion::{ALGORITHM as ASSERTION_ALGORITHM, AssertionKey, GeneratedKey};
pub use auth::{ClientAuth, UpstreamAuth};
pub use breaker::{BreakerSettings, BreakerState};
pub use retry::RetrySettings;

use auth::{Credentials, TokenCache};
use breaker::{Breaker, Outcome};
use outbound::OutboundPolicy;
use retry::{RetryBudget, is_unavailable, retryable};
use tls::HttpClient;

/// A provider that cannot complete a TCP (and TLS) handshake in 5 s is down
/// for the app's purposes, whatever its response budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const USER_AGENT_VALUE: &str = concat!("fhirgate/", env!("CARGO_PKG_VERSION"));

/// How the gateway reaches one provider. Built from the provider directory.
///
/// The id must be unique across the directory: breakers, retry budgets and
/// cached tokens are kept per id.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub id: String,
    /// Budget for the whole exchange, retries and upstream token fetch included.
    pub timeout: Duration,
    /// From the provider directory; [`DEFAULT_CONNECT_TIMEOUT`] unless it says otherwise.
    pub connect_timeout: Duration,
    /// Extra trust anchor(s), PEM file, added to the system roots for this provider only.
    pub extra_ca: Option<PathBuf>,
    /// The gateway's client certificate for mutual TLS with this provider.
    pub client_cert: Option<ClientCert>,
    /// `Debug` shows which kind, never the value or secret.
    pub auth: Option<UpstreamAuth>,
    pub breaker: BreakerSettings,
    pub retry: RetrySettings,
    /// Reached only at addresses the outbound-address policy permits: a
    /// provider registered through the admin API, not one the operator
    /// declared in the policy file.
    pub restricted: bool,
}

impl ProviderSettings {
    /// A provider reached with the defaults: system roots, no credentials,
    /// the default connect timeout, breaker and retries.
    pub fn new(id: impl Into<String>, timeout: Duration) -> Self {
        ProviderSettings {
            id: id.into(),
            timeout,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_ca: None,
            client_cert: None,
            auth: None,
            breaker: BreakerSettings::default(),
            retry: RetrySettings::default(),
            restricted: false,
        }
    }

    /// Whether state built for `self` serves `other` as well. The timeout is
    /// read per request, so it does not count.
    fn same_path(&self, other: &ProviderSettings) -> bool {
        self.connect_timeout == other.connect_timeout
            && self.extra_ca == other.extra_ca
            && self.client_cert == other.client_cert
            && self.auth == other.auth
            && self.breaker == other.breaker
            && self.retry == other.retry
            && self.restricted == other.restricted
    }
}

/// A client certificate and its key, PEM files; the key private to the
/// gateway's user, plain or sealed under the key-encryption key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why an exchange with a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the provider could not be reached")]
    Connect,
    /// The provider's address is one the outbound-address policy refuses.
    #[error("the provider's address is refused by policy")]
    Refused,
    #[error("the provider did not answer within {0} ms")]
    Timeout(u128),
    #[error("the provider's answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the provider's answer was cut off or malformed")]
    Protocol,
    #[error("the upstream URL is invalid")]
    BadUrl,
    /// The provider's circuit breaker is open; try again after this long.
    #[error("the provider is failing; calls to it resume in {} ms", retry_after.as_millis())]
    CircuitOpen { retry_after: Duration },
    /// The provider's own token endpoint refused or failed; the message never contains secrets.
    #[error("the gateway could not authenticate to the provider: {0}")]
    Auth(String),
    /// The extra CA file could not be read/parsed.
    #[error("the provider's trust settings are unusable: {0}")]
    Tls(String),
}

/// A provider's answer, read in full.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The upstream path to every provider; cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    /// From `limits.max_upstream_body_bytes` in the gateway's configuration.
    max_body: usize,
    /// Where restricted providers may be.
    outbound: Arc<OutboundPolicy>,
    /// One pool per distinct connect timeout, extra CA and restriction,
    /// shared by the providers that have the same ones.
    clients: Mutex<HashMap<PoolKey, HttpClient>>,
    providers: Mutex<HashMap<String, Arc<ProviderState>>>,
}

/// What a pool is shared by: the connect timeout, the extra CA, the client
/// certificate, and whether the outbound-address policy applies.
type PoolKey = (Duration, Option<PathBuf>, Option<ClientCert>, bool);

/// What one provider's requests share.
struct ProviderState {
    settings: ProviderSettings,
    client: HttpClient,
    breaker: Breaker,
    budget: RetryBudget,
    tokens: TokenCache,
}

impl Upstream {
    pub fn new(max_body: usize) -> Self {
        Self::with_outbound(max_body, OutboundPolicy::default())
    }

    /// An upstream whose restricted providers are reached only at the
    /// addresses `outbound` permits.
    pub fn with_outbound(max_body: usize, outbound: OutboundPolicy) -> Self {
        Upstream {
            inner: Arc::new(Inner {
                max_body,
                outbound: Arc::new(outbound),
                clients: Mutex::new(HashMap::new()),
                providers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Checks settings that can fail before any request (the extra CA file, the token URL).
    /// Called when the directory is (re)built, so a bad file fails at load,
    /// not at request time.
    pub fn check(settings: &ProviderSettings) -> Result<(), UpstreamError> {
        if let Some(path) = &settings.extra_ca {
            tls::load_extra_ca(path)?;
        }
        if let Some(cert) = &settings.client_cert {
            tls::load_client_cert(cert)?;
        }
        if let Some(UpstreamAuth::ClientCredentials { token_url, .. }) = &settings.auth {
            parse_url(token_url).map_err(|_| UpstreamError::Auth("the token URL is not an http(s) URL".into()))?;
        }
        Ok(())
    }

    /// GET `url` for `provider` with `headers` (already filtered by the
    /// caller) and `Accept: accept`, within `provider.timeout` for all
    /// attempts together.
    pub async fn get(
        &self,
        provider: &ProviderSettings,
        url: &str,
        headers: HeaderMap,
        accept: &'static str,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let deadline = Instant::now() + provider.timeout;
        let uri = parse_url(url)?;
        let state = self.state_for(provider)?;
        let headers = outbound_headers(headers, accept);
        let retry = &state.settings.retry;

        let mut permit =
            state.breaker.try_acquire().map_err(|retry_after| UpstreamError::CircuitOpen { retry_after })?;
        // Only requests that go out earn retries: the budget is a share of
        // the traffic the provider actually sees.
        state.budget.deposit();
        let mut retries = 0;
        loop {
            let result = tokio::time::timeout_at(deadline, self.attempt(&state, &uri, &headers))
                .await
                .unwrap_or(Err(UpstreamError::Timeout(provider.timeout.as_millis())));
            permit.record(health(&result));

            if !retryable(&result) || retries >= retry.max_retries || Instant::now() + retry.backoff >= deadline {
                return result;
            }
            // A failure that opened the breaker ends the request too.
            let Ok(next) = state.breaker.try_acquire() else { return result };
            if !state.budget.withdraw() {
                tracing::debug!(provider = %provider.id, "retry budget spent; not retrying");
                return result;
            }
            retries += 1;
            tracing::debug!(provider = %provider.id, retry = retries, "retrying the provider");
            tokio::time::sleep(retry.backoff).await;
            permit = next;
        }
    }

    /// POSTs the form `body` to `url` over `settings`' connection (its CA,
    /// client certificate and address policy), once, within its timeout; with
    /// `basic` as HTTP Basic client credentials (RFC 6749 §2.3.1). For token
    /// endpoints the gateway calls as a client, such as an OpenID Connect
    /// provider's.
    pub async fn post_form(
        &self,
        settings: &ProviderSettings,
        url: &str,
        body: String,
        basic: Option<(&str, &str)>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = parse_url(url)?;
        let client = self.client_for(settings)?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT_VALUE);
        if let Some((id, secret)) = basic {
            request = request.header(http::header::AUTHORIZATION, auth::basic_auth(id, secret));
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|_| UpstreamError::BadUrl)?;
        tokio::time::timeout(settings.timeout, send(&client, request, self.inner.max_body))
            .await
            .unwrap_or(Err(UpstreamError::Timeout(settings.timeout.as_millis())))
    }

    /// Breaker state for admin/metrics; `None` for a provider not called yet.
    pub fn breaker_state(&self, provider_id: &str) -> Option<BreakerState> {
        lock(&self.inner.providers).get(provider_id).map(|s| s.breaker.state())
    }

    /// One exchange, with the provider's credentials. A provider that refuses
    /// its client-credentials token gets one more try with a fresh token: it
    /// may have revoked the cached one early.
    async fn attempt(
        &self,
        state: &ProviderState,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let client = &state.client;
        let max_body = self.inner.max_body;
        match &state.settings.auth {
            None => send(client, get_request(uri, headers, None)?, max_body).await,
            Some(UpstreamAuth::Header { name, value }) => {
                let mut value = value.clone();
                value.set_sensitive(true);
                send(client, get_request(uri, headers, Some((name, value)))?, max_body).await
            }
            Some(UpstreamAuth::ClientCredentials { token_url, client_id, scope, client_auth }) => {
                let credentials = Credentials { token_url, client_id, scope: scope.as_deref(), client_auth };
                let provider = state.settings.id.as_str();
                let bearer = state.tokens.bearer(client, provider, credentials).await?;
                let answer =
                    send(client, get_request(uri, headers, Some((&AUTHORIZATION, bearer.clone())))?, max_body).await?;
                if answer.status != StatusCode::UNAUTHORIZED {
                    return Ok(answer);
                }
                tracing::info!(provider, "provider refused its access token; fetching a new one");
                state.tokens.invalidate(&bearer).await;
                let bearer = state.tokens.bearer(client, provider, credentials).await?;
                send(client, get_request(uri, headers, Some((&AUTHORIZATION, bearer)))?, max_body).await
            }
        }
    }

    /// The state for `settings.id`, made afresh if its settings changed.
    fn state_for(&self, settings: &ProviderSettings) -> Result<Arc<ProviderState>, UpstreamError> {
        let current = lock(&self.inner.providers).get(&settings.id).filter(|s| s.settings.same_path(settings)).cloned();
        if let Some(state) = current {
            return Ok(state);
        }
        let client = self.client_for(settings)?;
        let fresh = Arc::new(ProviderState {
            settings: settings.clone(),
            client,
            breaker: Breaker::new(&settings.id, &settings.breaker),
            budget: RetryBudget::new(&settings.retry),
            tokens: TokenCache::new(),
        });
        let mut providers = lock(&self.inner.providers);
        match providers.get(&settings.id) {
            // Another request got here first with the same settings.
            Some(existing) if existing.settings.same_path(settings) => Ok(existing.clone()),
            existing => {
                if existing.is_some() {
                    tracing::info!(provider = %settings.id, "provider settings changed; its breaker and token start afresh");
                }
                providers.insert(settings.id.clone(), fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// The shared pool for `settings`' connect timeout and extra CA. The CA
    /// file is read when the pool is first built; a changed file takes effect
    /// under a new path or after a restart.
    fn client_for(&self, settings: &ProviderSettings) -> Result<HttpClient, UpstreamError> {
        let key =
            (settings.connect_timeout, settings.extra_ca.clone(), settings.client_cert.clone(), settings.restricted);
        if let Some(client) = lock(&self.inner.clients).get(&key).cloned() {
            return Ok(client);
        }
        // Built outside the lock, so that reading a CA file does not hold up
        // requests to other providers.
        let outbound = settings.restricted.then(|| self.inner.outbound.clone());
        let client = tls::client(
            settings.connect_timeout,
            settings.extra_ca.as_deref(),
            settings.client_cert.as_ref(),
            outbound,
        )?;
        Ok(lock(&self.inner.clients).entry(key).or_insert(client).clone())
    }
}

/// What an attempt's result says about the provider's health.
fn health(result: &Result<UpstreamResponse, UpstreamError>) -> Outcome {
    match result {
        Ok(answer) if is_unavailable(answer.status) => Outcome::Failure,
        // An answer too large to take still came from a provider that is up.
        Ok(_) | Err(UpstreamError::TooLarge(_)) => Outcome::Success,
        Err(UpstreamError::Connect | UpstreamError::Timeout(_) | UpstreamError::Protocol) => Outcome::Failure,
        Err(_) => Outcome::Neutral,
    }
}

/// An absolute `http` or `https` URL.
fn parse_url(url: &str) -> Result<Uri, UpstreamError> {
    let uri: Uri = url.parse().map_err(|_| UpstreamError::BadUrl)?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(UpstreamError::BadUrl),
    }
}

/// `headers` as they may leave the gateway. The caller filters already; this
/// is the last line, so that a mistake there cannot leak a client's
/// credentials to a provider or confuse the connection to it.
fn outbound_headers(mut headers: HeaderMap, accept: &'static str) -> HeaderMap {
    // Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let dropped: Vec<HeaderName> = headers.keys().filter(|name| !may_forward(name)).cloned().chain(listed).collect();
    for name in dropped {
        headers.remove(name);
    }
    headers.insert(ACCEPT, HeaderValue::from_static(accept));
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `keep-alive` and
/// `proxy-*`), the client's own credentials, and what the URL and the empty
/// body decide (`host`, `content-length`).
fn may_forward(name: &HeaderName) -> bool {
    let name = name.as_str();
    !(matches!(
        name,
        "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
            | "authorization"
            | "cookie"
            | "host"
            | "content-length"
    ) || name.starts_with("proxy-"))
}

fn get_request(
    uri: &Uri,
    headers: &HeaderMap,
    credential: Option<(&HeaderName, HeaderValue)>,
) -> Result<Request<Full<Bytes>>, UpstreamError> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .body(Full::default())
        .map_err(|_| UpstreamError::BadUrl)?;
    *request.headers_mut() = headers.clone();
    if let Some((name, value)) = credential {
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

/// Sends `request` and reads the answer in full, up to `limit` bytes.
async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    limit: usize,
) -> Result<UpstreamResponse, UpstreamError> {
    let answer = client.request(request).await.map_err(|e| {
        tracing::debug!(error = ?e, "upstream exchange failed");
        if outbound::is_refusal(&e) {
            UpstreamError::Refused
        } else if e.is_connect() {
            UpstreamError::Connect
        } else {
            UpstreamError::Protocol
        }
    })?;
    let status = answer.status();
    let body = Limited::new(answer.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                UpstreamError::TooLarge(limit)
            } else {
                UpstreamError::Protocol
            }
        })?
        .to_bytes();
    Ok(UpstreamResponse { status, body })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps are only ever read or given whole entries, so a panic while
    // one was locked cannot have left it inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
