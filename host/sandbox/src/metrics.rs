//! The gateway's figures at `/metrics`, in the Prometheus text format.
//!
//! Per module (labelled by partner, role, module name and digest): calls by
//! outcome (`ok`, `denied`, `timeout`, `memory`, `trap`, `busy`), call
//! durations, the peak linear memory of a call, and the instances made (a
//! call on a kept instance makes none). Per partner: policy
//! activations, rejections and rollbacks. Per route (and FHIR face): HTTP
//! requests by status, and their durations (the token endpoint's statuses
//! are its outcomes). Per provider: upstream exchanges by outcome and their
//! durations, and the circuit breaker's state. The directory's lag and the
//! store's answer time, as of the scrape. No label carries a token, a
//! tenant or patient data.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One module's figures for calls it answered (`ok` or `denied`), kept by
/// the module: the same series [`Metrics::module_call`] records into.
#[derive(Clone)]
pub struct ModuleFigures {
    ok: Counter,
    denied: Counter,
    duration: Histogram,
    peak_memory: Gauge,
    instantiations: Counter,
}

impl ModuleFigures {
    /// Records an answered call; `denied` for a denial.
    /// `fresh`: the call made its instance.
    pub fn answered(&self, denied: bool, elapsed: Duration, memory_bytes: usize, fresh: bool) {
        if fresh {
            self.instantiations.inc();
        }
        if denied { &self.denied } else { &self.ok }.inc();
        self.duration.observe(elapsed.as_secs_f64());
        let memory = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        self.peak_memory.inner().fetch_max(memory, Ordering::Relaxed);
    }

    /// The most linear memory a call of the module has ended with, in bytes.
    pub fn peak_memory(&self) -> i64 {
        self.peak_memory.get()
    }
}

/// Which module a figure is about. Shared strings: labelling a call copies
/// no text.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabels {
    pub partner: Arc<str>,
    pub role: &'static str,
    pub module: Arc<str>,
    pub digest: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    partner: Arc<str>,
    role: &'static str,
    module: Arc<str>,
    digest: Arc<str>,
    outcome: &'static str,
}

impl CallLabels {
    fn of(module: &ModuleLabels, outcome: &'static str) -> Self {
        CallLabels {
            partner: module.partner.clone(),
            role: module.role,
            module: module.module.clone(),
            digest: module.digest.clone(),
            outcome,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    partner: String,
    role: &'static str,
    digest: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    partner: String,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    face: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OAuthLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    face: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    provider: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    provider: Arc<str>,
    state: &'static str,
}

/// The breaker states a gauge is kept for (1 for the current one).
pub const BREAKER_STATES: [&str; 3] = ["closed", "open", "half-open"];

/// Durations from 10 µs to about 10 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 21))
}

/// Every figure the gateway keeps, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    durations: Family<ModuleLabels, Histogram, fn() -> Histogram>,
    peak_memory: Family<ModuleLabels, Gauge>,
    instantiations: Family<ModuleLabels, Counter>,
    policy: Family<PolicyLabels, Counter>,
    shadow: Family<ShadowLabels, Counter>,
    http: Family<HttpLabels, Counter>,
    http_durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream: Family<UpstreamLabels, Counter>,
    oauth: Family<OAuthLabels, Counter>,
    upstream_durations: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    breakers: Family<BreakerLabels, Gauge>,
    directory_lag: Gauge,
    store_answer: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fhirgate");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("module_calls", "Module calls by outcome", calls.clone());
        let durations = Family::<ModuleLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "module_call_duration_seconds",
            "Module call durations, instantiation included",
            durations.clone(),
        );
        let peak_memory = Family::<ModuleLabels, Gauge>::default();
        registry.register(
            "module_peak_memory_bytes",
            "Largest linear memory a module call reached",
            peak_memory.clone(),
        );
        let instantiations = Family::<ModuleLabels, Counter>::default();
        registry.register(
            "module_instantiations",
            "Module instances made for calls; a call on an instance kept from an earlier call or request makes none",
            instantiations.clone(),
        );
        let policy = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_changes",
            "Policy activations, rejections of a new policy, and rollbacks",
            policy.clone(),
        );
        let shadow = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_decisions",
            "Decisions of shadow (candidate) modules, the same as or different from the one served",
            shadow.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, FHIR face and status", http.clone());
        let http_durations =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to the response's head, by route and FHIR face",
            http_durations.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Exchanges with providers by outcome (status class, or timeout, connect, circuit-open, auth, tls, other)",
            upstream.clone(),
        );
        let oauth = Family::<OAuthLabels, Counter>::default();
        registry.register(
            "oauth_requests",
            "Requests to the authorization server's endpoints (token, revoke, introspect) by outcome: ok, \
             throttled, or the OAuth error code",
            oauth.clone(),
        );
        let upstream_durations =
            Family::<ProviderLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "upstream_duration_seconds",
            "Exchanges with providers, retries and token fetches included",
            upstream_durations.clone(),
        );
        let breakers = Family::<BreakerLabels, Gauge>::default();
        registry.register("provider_breaker", "Each provider's circuit breaker: 1 for its state", breakers.clone());
        let directory_lag = Gauge::default();
        registry.register(
            "directory_lag_milliseconds",
            "Since the directory was last confirmed current against the store",
            directory_lag.clone(),
        );
        let store_answer = Gauge::default();
        registry.register(
            "store_answer_microseconds",
            "The store's answer time to a trivial query at the scrape; -1 if it did not answer",
            store_answer.clone(),
        );
        Metrics {
            registry,
            calls,
            durations,
            peak_memory,
            instantiations,
            policy,
            shadow,
            http,
            http_durations,
            upstream,
            oauth,
            upstream_durations,
            breakers,
            directory_lag,
            store_answer,
        }
    }

    /// Records one request to the authorization server's `endpoint`.
    pub fn oauth_request(&self, endpoint: &'static str, outcome: &'static str) {
        self.oauth.get_or_create(&OAuthLabels { endpoint, outcome }).inc();
    }

    /// Records one HTTP request answered on `route` (`face`: `stu3`,
    /// `dstu2` or `-`).
    pub fn http_request(&self, route: &'static str, face: &'static str, status: u16, elapsed: Duration) {
        self.http.get_or_create(&HttpLabels { route, face, status }).inc();
        self.http_durations.get_or_create(&RouteLabels { route, face }).observe(elapsed.as_secs_f64());
    }

    /// Records one exchange with `provider`.
    pub fn upstream_exchange(&self, provider: &Arc<str>, outcome: &'static str, elapsed: Duration) {
        self.upstream.get_or_create(&UpstreamLabels { provider: provider.clone(), outcome }).inc();
        self.upstream_durations
            .get_or_create(&ProviderLabels { provider: provider.clone() })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the state of `provider`'s breaker (one of [`BREAKER_STATES`]).
    pub fn breaker(&self, provider: &str, state: &'static str) {
        let provider: Arc<str> = Arc::from(provider);
        for each in BREAKER_STATES {
            let labels = BreakerLabels { provider: provider.clone(), state: each };
            self.breakers.get_or_create(&labels).set(i64::from(each == state));
        }
    }

    /// The directory's lag and the store's answer time (`None`: it did not
    /// answer), as of now.
    pub fn freshness(&self, directory_lag: Duration, store_answer: Option<Duration>) {
        self.directory_lag.set(i64::try_from(directory_lag.as_millis()).unwrap_or(i64::MAX));
        self.store_answer.set(store_answer.map_or(-1, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    }

    /// The figures of `module`'s answered calls, to keep and record into
    /// without looking its labels up each time.
    pub fn module_figures(&self, module: &ModuleLabels) -> ModuleFigures {
        // One at a time: each lookup holds its family's lock until the end of
        // its statement, and the next may have to create a series.
        let ok = self.calls.get_or_create(&CallLabels::of(module, "ok")).clone();
        let denied = self.calls.get_or_create(&CallLabels::of(module, "denied")).clone();
        let duration = self.durations.get_or_create(module).clone();
        let peak_memory = self.peak_memory.get_or_create(module).clone();
        let instantiations = self.instantiations.get_or_create(module).clone();
        ModuleFigures { ok, denied, duration, peak_memory, instantiations }
    }

    /// Records one module call; `fresh`: the call made its instance.
    pub fn module_call(
        &self,
        module: &ModuleLabels,
        outcome: &'static str,
        elapsed: Duration,
        memory_bytes: usize,
        fresh: bool,
    ) {
        if fresh {
            self.instantiations.get_or_create(module).inc();
        }
        self.calls.get_or_create(&CallLabels::of(module, outcome)).inc();
        self.durations.get_or_create(module).observe(elapsed.as_secs_f64());
        let memory = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        self.peak_memory.get_or_create(module).inner().fetch_max(memory, Ordering::Relaxed);
    }

    /// Records a policy event: `activated`, `rejected`, `rolled-back` or
    /// `rolled-forward`.
    pub fn policy_event(&self, partner: &str, event: &'static str) {
        self.policy.get_or_create(&PolicyLabels { partner: partner.to_owned(), event }).inc();
    }

    /// Records one decision of a shadow module (`digest`, the candidate's).
    pub fn shadow_decision(&self, partner: &str, role: &'static str, digest: &str, same: bool) {
        let result = if same { "same" } else { "different" };
        self.shadow
            .get_or_create(&ShadowLabels { partner: partner.to_owned(), role, digest: digest.to_owned(), result })
            .inc();
    }

    /// Calls of `module` that ended with `outcome`, so far.
    pub fn calls(&self, module: &ModuleLabels, outcome: &'static str) -> u64 {
        self.calls.get(&CallLabels::of(module, outcome)).map(|c| c.get()).unwrap_or(0)
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_calls_durations_memory_and_policy_events() {
        let m = Metrics::new();
        let module =
            ModuleLabels { partner: "demo".into(), role: "routing", module: "router".into(), digest: "abc123".into() };
        m.module_call(&module, "ok", Duration::from_micros(40), 1 << 20, true);
        m.module_call(&module, "ok", Duration::from_micros(60), 1 << 19, false);
        m.module_call(&module, "timeout", Duration::from_millis(200), 2 << 20, true);
        m.policy_event("demo", "rejected");
        assert_eq!(m.calls(&module, "ok"), 2);
        let text = m.render();
        let labels = r#"partner="demo",role="routing",module="router",digest="abc123""#;
        assert!(text.contains(&format!("fhirgate_module_calls_total{{{labels},outcome=\"ok\"}} 2")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_calls_total{{{labels},outcome=\"timeout\"}} 1")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_call_duration_seconds_count{{{labels}}} 3")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_peak_memory_bytes{{{labels}}} 2097152")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_instantiations_total{{{labels}}} 2")), "{text}");
        assert!(text.contains(r#"fhirgate_policy_changes_total{partner="demo",event="rejected"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

#[cfg(test)]
mod figures_tests {
    use super::*;

    /// Looking a new module's figures up creates its series one family lock
    /// at a time: holding one lock while asking for another deadlocked.
    #[test]
    fn a_new_modules_figures_are_made_and_recorded_into() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let metrics = Metrics::new();
            let labels = ModuleLabels { partner: "p".into(), role: "routing", module: "m".into(), digest: "d".into() };
            let figures = metrics.module_figures(&labels);
            figures.answered(false, Duration::from_micros(5), 1024, true);
            figures.answered(true, Duration::from_micros(5), 2048, false);
            let _ = done.send((metrics.calls(&labels, "ok"), metrics.calls(&labels, "denied")));
        });
        let counted = finished.recv_timeout(Duration::from_secs(10)).expect("looking the figures up never returned");
        assert_eq!(counted, (1, 1));
    }
}
