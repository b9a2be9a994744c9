//! The reads a shaping module may make through the `upstream` import: `Type/id`
//! of the types the gateway allows (Locations today: what a shaping module
//! needs to name an Encounter's location, and no patient data), only from
//! the provider answering the current request with that request's routing
//! headers, a few per call within one time budget, cached briefly per tenant,
//! provider and headers (an Encounter page names the same few Locations over
//! and over). Reads have their own circuit breaker and no retries, so a
//! module's reads cannot open the breaker the app's requests depend on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::{ProviderSettings, Upstream, UpstreamError};
use fhirgate_core::ids::is_type_and_id;
use fhirgate_sandbox::UpstreamReads;
use fhirgate_sandbox::bindings::upstream::ReadError;

/// Reads one shaping call may make: a searchset page of Encounters names a
/// handful of distinct Locations; more would be a module fetching data it
/// was not asked for.
pub const MAX_READS_PER_CALL: u32 = 16;

/// Time all reads of one call may take together: the app is waiting.
const READ_BUDGET: Duration = Duration::from_secs(5);

/// How long a read answer is reused. Long enough to serve a page of
/// Encounters and the next one, short enough that a renamed ward shows.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// Resource types a module may read.
const READABLE_TYPES: &[&str] = &["Location"];

/// Largest answer a read may return: a Location is a few hundred bytes.
const MAX_READ_BODY: usize = 64 * 1024;

/// Cached answers, shared by all requests, keyed by tenant, provider (id,
/// base URL and routing headers) and path.
pub struct ReadCache {
    entries: quick_cache::sync::Cache<(String, String, String), (Instant, Bytes)>,
}

impl Default for ReadCache {
    fn default() -> Self {
        // 4 096 answers of at most 64 KiB: 256 MiB at the very worst, a few
        // MiB for real Locations.
        ReadCache { entries: quick_cache::sync::Cache::new(4096) }
    }
}

/// The reads of one shaping call.
pub struct ProviderReads {
    upstream: Upstream,
    settings: ProviderSettings,
    base_url: String,
    accept: &'static str,
    tenant: String,
    /// The provider's own id (reads use their own breaker id).
    provider_id: String,
    headers: HeaderMap,
    request_id: String,
    cache: Arc<ReadCache>,
    left: AtomicU32,
    deadline: Instant,
}

impl std::fmt::Debug for ProviderReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderReads").field("provider", &self.settings.id).finish_non_exhaustive()
    }
}

impl ProviderReads {
    /// Reads for a request to the provider of `settings` at `base_url`,
    /// for `tenant`, with the request's routing `headers`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstream: Upstream,
        settings: &ProviderSettings,
        base_url: &str,
        accept: &'static str,
        tenant: &str,
        headers: HeaderMap,
        request_id: &str,
        cache: Arc<ReadCache>,
    ) -> ProviderReads {
        let budget = READ_BUDGET.min(settings.timeout);
        let provider_id = settings.id.clone();
        // Their own breaker and retry budget, no retries.
        let mut settings = settings.clone();
        settings.id = format!("{}#reads", settings.id);
        settings.retry.max_retries = 0;
        ProviderReads {
            upstream,
            settings,
            base_url: base_url.to_owned(),
            accept,
            tenant: tenant.to_ascii_lowercase(),
            provider_id,
            headers,
            request_id: request_id.to_owned(),
            cache,
            left: AtomicU32::new(MAX_READS_PER_CALL),
            deadline: Instant::now() + budget,
        }
    }

    async fn fetch(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        if !is_type_and_id(path) {
            return Err(ReadError::NotAllowed(format!("`{}` is not a `Type/id` path", clip(path))));
        }
        if !READABLE_TYPES.iter().any(|t| path.split('/').next() == Some(*t)) {
            return Err(ReadError::NotAllowed(format!("only {} can be read", READABLE_TYPES.join(", "))));
        }
        let key = (self.tenant.clone(), self.scope(), path.to_owned());
        if let Some((at, body)) = self.cache.entries.get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(body.to_vec());
        }
        let claimed = self.left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if claimed.is_err() {
            return Err(ReadError::NotAllowed(format!("at most {MAX_READS_PER_CALL} reads per call")));
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ReadError::Failed("the time for reads in this call is spent".into()));
        }
        let mut settings = self.settings.clone();
        settings.timeout = remaining.min(settings.timeout);
        let mut headers = self.headers.clone();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert(HeaderName::from_static("x-request-id"), v);
        }
        let url = format!("{}/{path}", self.base_url);
        let answer = self.upstream.get(&settings, &url, headers, self.accept).await.map_err(|e| match e {
            // Details of the gateway's own credentials stay in its log.
            UpstreamError::Tls(_) | UpstreamError::Auth(_) => {
                ReadError::Failed("the gateway could not authenticate to the provider".into())
            }
            e => ReadError::Failed(format!("the provider could not be read: {e}")),
        })?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::GONE => return Err(ReadError::NotFound),
            s => return Err(ReadError::Failed(format!("the provider answered {s}"))),
        }
        if answer.body.len() > MAX_READ_BODY {
            return Err(ReadError::Failed(format!("the answer is larger than {MAX_READ_BODY} bytes")));
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&answer.body).is_err() {
            return Err(ReadError::Failed("the provider's answer is not JSON".into()));
        }
        self.cache.entries.insert(key, (Instant::now(), answer.body.clone()));
        Ok(answer.body.to_vec())
    }
}

impl ProviderReads {
    /// Provider id, base URL and routing headers: what makes two reads of
    /// the same path the same read. Built only when a module reads.
    fn scope(&self) -> String {
        let mut scope = format!("{}\n{}", self.provider_id, self.base_url);
        for (name, value) in &self.headers {
            scope.push_str(&format!("\n{name}: {}", String::from_utf8_lossy(value.as_bytes())));
        }
        scope
    }
}

impl UpstreamReads for ProviderReads {
    fn read<'a>(
        &'a self,
        path: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, ReadError>> + Send + 'a>> {
        Box::pin(self.fetch(path))
    }

    fn budget(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
