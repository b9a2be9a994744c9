//! The gateway's figures at `/metrics`, in the Prometheus text format.
//!
//! Per module (labelled by partner, role, module name and digest): calls by
//! outcome (`ok`, `denied`, `timeout`, `memory`, `trap`, `busy`), call
//! durations, and the peak linear memory of a call. Per partner: policy
//! activations, rejections and rollbacks. No label carries a token, a
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
    policy: Family<PolicyLabels, Counter>,
    shadow: Family<ShadowLabels, Counter>,
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
        Metrics { registry, calls, durations, peak_memory, policy, shadow }
    }

    /// Records one module call.
    pub fn module_call(&self, module: &ModuleLabels, outcome: &'static str, elapsed: Duration, memory_bytes: usize) {
        self.calls.get_or_create(&CallLabels::of(module, outcome)).inc();
        self.durations.get_or_create(module).observe(elapsed.as_secs_f64());
        let memory = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        self.peak_memory.get_or_create(module).inner().fetch_max(memory, Ordering::Relaxed);
    }

    /// Records a policy event: `activated`, `rejected` or `rolled-back`.
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
        m.module_call(&module, "ok", Duration::from_micros(40), 1 << 20);
        m.module_call(&module, "ok", Duration::from_micros(60), 1 << 19);
        m.module_call(&module, "timeout", Duration::from_millis(200), 2 << 20);
        m.policy_event("demo", "rejected");
        assert_eq!(m.calls(&module, "ok"), 2);
        let text = m.render();
        let labels = r#"partner="demo",role="routing",module="router",digest="abc123""#;
        assert!(text.contains(&format!("fhirgate_module_calls_total{{{labels},outcome=\"ok\"}} 2")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_calls_total{{{labels},outcome=\"timeout\"}} 1")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_call_duration_seconds_count{{{labels}}} 3")), "{text}");
        assert!(text.contains(&format!("fhirgate_module_peak_memory_bytes{{{labels}}} 2097152")), "{text}");
        assert!(text.contains(r#"fhirgate_policy_changes_total{partner="demo",event="rejected"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
