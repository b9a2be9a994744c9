//! Example routing module: the default router's tenant → provider table,
//! refined by rules that send some resource types to another provider and by
//! cutovers that move a tenant to a new provider at a set time.
//!
//! Layout:
//! - [`Config`]: the module configuration, parsed and checked;
//! - [`decide`]: the routing decision, free of host calls so it is
//!   unit-tested natively;
//! - [`rfc3339`]: the timestamp parser cutovers use.

pub mod rfc3339;

use std::collections::BTreeMap;
use std::fmt::Display;

use fhirgate_guest_sdk::types::{Claims, Denial, Interaction, Request};
use fhirgate_guest_sdk::{deny, is_guid};
use serde::Deserialize;
use serde_json::Value;

use fhirgate_guest_sdk::router::Target;

/// The module configuration as the policy writes it
/// (`[modules.routing.config]`), before its values are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Tenant id (GUID, any case) → base provider id.
    tenants: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RuleFile>,
    #[serde(default)]
    cutovers: Vec<CutoverFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    /// Absent: every tenant in the table.
    tenants: Option<Vec<String>>,
    resource_types: Vec<String>,
    provider: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CutoverFile {
    tenant: String,
    provider: String,
    /// RFC 3339 text; an unquoted TOML datetime arrives as the object the
    /// `toml` crate serialises it to, and is accepted too.
    at: Value,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    /// Lower-case tenant id → where its requests go.
    tenants: BTreeMap<String, Tenant>,
    /// In the policy's order: the first that matches wins.
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Tenant {
    /// The provider from the table, until the first cutover passes.
    provider: String,
    /// Earliest first.
    cutovers: Vec<Cutover>,
}

#[derive(Debug)]
struct Cutover {
    /// Milliseconds since the Unix epoch, from which `provider` applies.
    at_ms: i64,
    provider: String,
}

#[derive(Debug)]
struct Rule {
    /// Lower-case tenant ids; `None` for every tenant in the table.
    tenants: Option<Vec<String>>,
    /// FHIR resource type names, compared exactly as FHIR names are.
    resource_types: Vec<String>,
    provider: String,
}

/// The key `toml` gives a datetime when it serialises one.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

impl Config {
    /// Parses and checks the configuration JSON. The error names the key at
    /// fault and what was expected.
    pub fn parse(json: &str) -> Result<Config, String> {
        let file: ConfigFile = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
            .map_err(|e| {
                // The host wrote this JSON from the policy's TOML, so a line
                // and column in it would mean nothing to the partner.
                let inner = e.inner().to_string();
                let what = inner.rsplit_once(" at line ").map_or(inner.as_str(), |(what, _)| what);
                match e.path().to_string().as_str() {
                    "." => format!("The routing configuration is invalid: {what}."),
                    path => invalid(path, what),
                }
            })?;

        let mut tenants = BTreeMap::new();
        for (id, provider) in &file.tenants {
            let key = format!("tenants.{id}");
            if !is_guid(id) {
                return Err(invalid(&key, "a tenant id must be a GUID such as 3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13"));
            }
            let tenant = Tenant { provider: provider_id(&key, provider)?, cutovers: Vec::new() };
            if tenants.insert(id.to_ascii_lowercase(), tenant).is_some() {
                return Err(invalid(&key, "another key names the same tenant in a different case"));
            }
        }

        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, rule) in file.rules.iter().enumerate() {
            let rule_tenants = match &rule.tenants {
                None => None,
                Some(ids) if ids.is_empty() => {
                    return Err(invalid(
                        format!("rules[{i}].tenants"),
                        "the list is empty; leave the key out to match every tenant",
                    ));
                }
                Some(ids) => Some(
                    ids.iter()
                        .enumerate()
                        .map(|(j, id)| known_tenant(&tenants, &format!("rules[{i}].tenants[{j}]"), id))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            if rule.resource_types.is_empty() {
                return Err(invalid(format!("rules[{i}].resource_types"), "the list is empty"));
            }
            for (j, name) in rule.resource_types.iter().enumerate() {
                if !is_resource_type(name) {
                    return Err(invalid(
                        format!("rules[{i}].resource_types[{j}]"),
                        format!("{name:?} is not a FHIR resource type name such as \"Observation\""),
                    ));
                }
            }
            rules.push(Rule {
                tenants: rule_tenants,
                resource_types: rule.resource_types.clone(),
                provider: provider_id(&format!("rules[{i}].provider"), &rule.provider)?,
            });
        }

        for (i, cutover) in file.cutovers.iter().enumerate() {
            let tenant_id = known_tenant(&tenants, &format!("cutovers[{i}].tenant"), &cutover.tenant)?;
            let provider = provider_id(&format!("cutovers[{i}].provider"), &cutover.provider)?;
            let at_key = format!("cutovers[{i}].at");
            let at_ms = timestamp_ms(&at_key, &cutover.at)?;
            let tenant = tenants.get_mut(&tenant_id).expect("known_tenant checked the table");
            if tenant.cutovers.iter().any(|c| c.at_ms == at_ms) {
                return Err(invalid(at_key, "the tenant already has a cutover at this instant"));
            }
            tenant.cutovers.push(Cutover { at_ms, provider });
        }
        for tenant in tenants.values_mut() {
            tenant.cutovers.sort_by_key(|c| c.at_ms);
        }

        Ok(Config { tenants, rules })
    }
}

impl Tenant {
    /// The base provider at `now_ms`: that of the latest cutover already
    /// passed, else the table's.
    fn provider_at(&self, now_ms: i64) -> &str {
        self.cutovers.iter().rev().find(|c| c.at_ms <= now_ms).map_or(&self.provider, |c| &c.provider)
    }
}

impl Rule {
    fn matches(&self, tenant_id: &str, resource_type: &str) -> bool {
        self.tenants.as_ref().is_none_or(|ids| ids.iter().any(|id| id == tenant_id))
            && self.resource_types.iter().any(|t| t == resource_type)
    }
}

fn invalid(key: impl Display, what: impl Display) -> String {
    format!("The routing configuration is invalid at `{key}`: {what}.")
}

/// `value` as a provider id, or an error naming `key`.
fn provider_id(key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(invalid(
            key,
            format!("{value:?} is not a provider id; name a provider declared under the policy's `[providers]`"),
        ));
    }
    Ok(value.to_owned())
}

/// `id` lower-cased, if it is a GUID with an entry in the table; else an
/// error naming `key`. A rule or cutover for a tenant missing from the table
/// would never apply, so it is a mistake worth reporting.
fn known_tenant(tenants: &BTreeMap<String, Tenant>, key: &str, id: &str) -> Result<String, String> {
    if !is_guid(id) {
        return Err(invalid(key, format!("{id:?} is not a tenant id (a GUID)")));
    }
    let id = id.to_ascii_lowercase();
    if !tenants.contains_key(&id) {
        return Err(invalid(key, "the tenant has no entry in `tenants`"));
    }
    Ok(id)
}

/// Milliseconds since the Unix epoch for the timestamp `value`, or an error
/// naming `key`.
fn timestamp_ms(key: &str, value: &Value) -> Result<i64, String> {
    let text = match value {
        Value::Object(map) if map.len() == 1 => map.get(TOML_DATETIME_KEY),
        other => Some(other),
    }
    .and_then(Value::as_str)
    .ok_or_else(|| invalid(key, "expected an RFC 3339 timestamp such as \"2026-12-01T00:00:00Z\""))?;
    rfc3339::parse_ms(text).map_err(|why| invalid(key, format!("{text:?} is not an RFC 3339 timestamp: {why}")))
}

/// Whether `name` has the shape of a FHIR resource type: an upper-case
/// letter, then letters and digits.
fn is_resource_type(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Picks the route for `request` made under `claims` at `now_ms` (the host
/// clock, milliseconds since the Unix epoch).
///
/// The tenant must have an entry in the table. Its base provider is the
/// table's, or that of the latest cutover already passed; the first rule
/// naming the tenant (or every tenant) and the request's resource type
/// overrides it. A batch reaches the router one entry at a time, so the
/// resource type is always the entry's own.
pub fn decide(config: &Config, claims: &Claims, request: &Request, now_ms: u64) -> Result<Target, Denial> {
    let (tenant_id, tenant) = config
        .tenants
        .get_key_value(&claims.tenant_id.to_ascii_lowercase())
        .ok_or_else(|| deny(403, "unknown-tenant", "No provider is configured for this token's tenant."))?;
    let path = match request.interaction {
        // `POST Type/_search` arrives with its form body already in `params`;
        // upstream it is the plain type-level search.
        Interaction::Search => request.resource_type.clone().unwrap_or_default(),
        Interaction::Read | Interaction::Vread => request.path.clone(),
        _ => {
            return Err(deny(405, "not-supported", "This interaction is not routed by the rules router."));
        }
    };
    let rule = request
        .resource_type
        .as_deref()
        .and_then(|resource_type| config.rules.iter().find(|rule| rule.matches(tenant_id, resource_type)));
    let provider = match rule {
        Some(rule) => &rule.provider,
        None => tenant.provider_at(i64::try_from(now_ms).unwrap_or(i64::MAX)),
    };
    Ok(Target { provider_id: provider.to_owned(), path, params: request.params.clone(), headers: Vec::new() })
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Router;

impl fhirgate_guest_sdk::router::Guest for Router {
    fn route(claims: Claims, request: Request) -> Result<Target, Denial> {
        // Each call runs in a fresh instance, so there is nothing to cache
        // the parsed configuration in; it is a few small tables.
        let config = Config::parse(&fhirgate_guest_sdk::host::config()).map_err(|m| deny(500, "bad-config", m))?;
        decide(&config, &claims, &request, fhirgate_guest_sdk::now_ms())
    }
}

// Exported only when built as a component: the export symbols' names (with
// `:` and `@`) cannot be linked into a native shared library, and native
// builds exist only to unit-test the logic.
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_router!(Router);

#[cfg(test)]
mod tests {
    use fhirgate_guest_sdk::types::{FhirVersion, Param};
    use serde_json::json;

    use super::*;

    const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
    const OTHER: &str = "8e1c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11";
    /// 2026-12-01T00:00:00Z.
    const CUTOVER_MS: u64 = 1_796_083_200_000;

    fn config() -> Config {
        Config::parse(
            &json!({
                "tenants": {TENANT.to_uppercase(): "main-ehr", OTHER: "other-ehr"},
                "rules": [
                    {"tenants": [TENANT], "resource_types": ["Observation", "DiagnosticReport"], "provider": "results"},
                    {"tenants": [TENANT], "resource_types": ["Observation"], "provider": "never"},
                    {"resource_types": ["Practitioner"], "provider": "directory"},
                ],
                "cutovers": [
                    {"tenant": TENANT, "provider": "newer-ehr", "at": "2027-06-01T00:00:00Z"},
                    {"tenant": TENANT, "provider": "new-ehr", "at": "2026-12-01T00:00:00Z"},
                ],
            })
            .to_string(),
        )
        .expect("valid configuration")
    }

    fn claims(tenant: &str) -> Claims {
        Claims {
            client_id: "app".into(),
            tenant_id: tenant.into(),
            scopes: vec![tenant.into()],
            expires_at: 0,
            token_id: None,
        }
    }

    fn read(resource_type: &str) -> Request {
        Request {
            request_id: "r".into(),
            method: "GET".into(),
            fhir_version: FhirVersion::Stu3,
            interaction: Interaction::Read,
            resource_type: Some(resource_type.into()),
            resource_id: Some("1".into()),
            path: format!("{resource_type}/1"),
            params: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn provider(config: &Config, tenant: &str, request: &Request, now_ms: u64) -> String {
        decide(config, &claims(tenant), request, now_ms).expect("routed").provider_id
    }

    #[test]
    fn rules_send_their_resource_types_elsewhere() {
        let c = config();
        assert_eq!(provider(&c, TENANT, &read("Observation"), 0), "results", "first matching rule wins");
        assert_eq!(provider(&c, TENANT, &read("DiagnosticReport"), 0), "results");
        assert_eq!(provider(&c, TENANT, &read("Patient"), 0), "main-ehr");
        assert_eq!(provider(&c, OTHER, &read("Observation"), 0), "other-ehr", "the rule names one tenant");
        assert_eq!(provider(&c, OTHER, &read("Practitioner"), 0), "directory", "a rule without tenants");
        assert_eq!(provider(&c, TENANT, &read("Practitioner"), 0), "directory");
        assert_eq!(provider(&c, TENANT, &read("observation"), 0), "main-ehr", "resource types are exact");
    }

    #[test]
    fn tenants_match_in_any_case() {
        let c = config();
        assert_eq!(provider(&c, &TENANT.to_uppercase(), &read("Observation"), 0), "results");
        assert_eq!(provider(&c, &OTHER.to_uppercase(), &read("Patient"), 0), "other-ehr");
    }

    #[test]
    fn cutovers_replace_the_base_provider_once_passed() {
        let c = config();
        let patient = read("Patient");
        assert_eq!(provider(&c, TENANT, &patient, CUTOVER_MS - 1), "main-ehr");
        assert_eq!(provider(&c, TENANT, &patient, CUTOVER_MS), "new-ehr");
        assert_eq!(provider(&c, TENANT, &patient, 1_811_808_000_000), "newer-ehr", "the latest passed wins");
        assert_eq!(provider(&c, TENANT, &read("Observation"), CUTOVER_MS), "results", "rules still apply");
        assert_eq!(provider(&c, OTHER, &patient, CUTOVER_MS), "other-ehr", "other tenants stay");
        assert_eq!(provider(&c, TENANT, &patient, u64::MAX), "newer-ehr");
    }

    #[test]
    fn searches_and_reads_pass_through() {
        let c = config();
        let mut search = read("Observation");
        search.interaction = Interaction::Search;
        search.resource_id = None;
        search.path = "Observation/_search".into();
        search.params = vec![Param { name: "patient".into(), value: "p1".into() }];
        let target = decide(&c, &claims(TENANT), &search, 0).unwrap();
        assert_eq!(target.path, "Observation");
        assert_eq!(target.params.len(), 1);
        assert_eq!(target.params[0].name, "patient");
        assert!(target.headers.is_empty());

        let mut vread = read("Patient");
        vread.interaction = Interaction::Vread;
        vread.path = "Patient/1/_history/2".into();
        assert_eq!(decide(&c, &claims(TENANT), &vread, 0).unwrap().path, "Patient/1/_history/2");

        let mut other = read("Patient");
        other.interaction = Interaction::Other;
        let denial = decide(&c, &claims(TENANT), &other, 0).unwrap_err();
        assert_eq!((denial.status, denial.code.as_str()), (405, "not-supported"));
    }

    #[test]
    fn unknown_tenants_are_denied_even_where_a_rule_covers_every_tenant() {
        let denial =
            decide(&config(), &claims("00000000-0000-4000-8000-000000000000"), &read("Practitioner"), 0).unwrap_err();
        assert_eq!(denial.status, 403);
        assert_eq!(denial.code, "unknown-tenant");
        assert!(denial.message.contains("tenant"), "{}", denial.message);
    }

    #[test]
    fn minimal_configuration_is_the_table_alone() {
        let c = Config::parse(&json!({"tenants": {TENANT: "main-ehr"}}).to_string()).unwrap();
        assert_eq!(provider(&c, TENANT, &read("Observation"), CUTOVER_MS), "main-ehr");
    }

    #[test]
    fn unquoted_toml_datetimes_are_accepted() {
        let c = Config::parse(
            &json!({
                "tenants": {TENANT: "main-ehr"},
                "cutovers": [{"tenant": TENANT, "provider": "new-ehr",
                              "at": {TOML_DATETIME_KEY: "2026-12-01T01:00:00+01:00"}}],
            })
            .to_string(),
        )
        .unwrap();
        assert_eq!(provider(&c, TENANT, &read("Patient"), CUTOVER_MS - 1), "main-ehr");
        assert_eq!(provider(&c, TENANT, &read("Patient"), CUTOVER_MS), "new-ehr");
    }

    /// Each broken configuration, with the key and the words its error must
    /// contain.
    #[test]
    fn bad_configuration_names_the_key() {
        let base = || json!({"tenants": {TENANT: "main-ehr"}});
        let with = |key: &str, value: Value| {
            let mut c = base();
            c[key] = value;
            c
        };
        let rule = |v: Value| with("rules", json!([v]));
        let cutover = |v: Value| with("cutovers", json!([v]));
        let cases = [
            (with("route", json!({})), "route", "unknown field `route`"),
            (with("tenants", json!({"not-a-guid": "main-ehr"})), "tenants.not-a-guid", "GUID"),
            (with("tenants", json!({TENANT: ""})), &format!("tenants.{TENANT}"), "not a provider id"),
            (with("tenants", json!({TENANT: 3})), &format!("tenants.{TENANT}"), "expected a string"),
            (
                with("tenants", json!({TENANT: "a", TENANT.to_uppercase(): "b"})),
                "tenants.",
                "same tenant in a different case",
            ),
            (
                rule(json!({"resource_types": ["Observation"], "provider": ""})),
                "rules[0].provider",
                "not a provider id",
            ),
            (rule(json!({"resource_types": ["Observation"]})), "rules[0]", "missing field `provider`"),
            (
                rule(json!({"resource_types": ["Observation"], "provider": "x", "tenant": TENANT})),
                "rules[0]",
                "unknown field `tenant`",
            ),
            (rule(json!({"resource_types": [], "provider": "x"})), "rules[0].resource_types", "empty"),
            (
                rule(json!({"resource_types": ["Patient", "observation"], "provider": "x"})),
                "rules[0].resource_types[1]",
                "\"observation\" is not a FHIR resource type",
            ),
            (
                rule(json!({"tenants": [], "resource_types": ["Observation"], "provider": "x"})),
                "rules[0].tenants",
                "leave the key out",
            ),
            (
                rule(json!({"tenants": [TENANT, "nope"], "resource_types": ["Observation"], "provider": "x"})),
                "rules[0].tenants[1]",
                "\"nope\" is not a tenant id",
            ),
            (
                rule(json!({"tenants": [OTHER], "resource_types": ["Observation"], "provider": "x"})),
                "rules[0].tenants[0]",
                "no entry in `tenants`",
            ),
            (
                cutover(json!({"tenant": OTHER, "provider": "x", "at": "2026-12-01T00:00:00Z"})),
                "cutovers[0].tenant",
                "no entry in `tenants`",
            ),
            (
                cutover(json!({"tenant": TENANT, "provider": " ", "at": "2026-12-01T00:00:00Z"})),
                "cutovers[0].provider",
                "not a provider id",
            ),
            (
                cutover(json!({"tenant": TENANT, "provider": "x", "at": "2026-12-01T00:00:00"})),
                "cutovers[0].at",
                "time zone is missing",
            ),
            (
                cutover(json!({"tenant": TENANT, "provider": "x", "at": "1 December 2026"})),
                "cutovers[0].at",
                "not an RFC 3339 timestamp",
            ),
            (cutover(json!({"tenant": TENANT, "provider": "x", "at": 1_796_083_200})), "cutovers[0].at", "expected"),
            (cutover(json!({"tenant": TENANT, "provider": "x"})), "cutovers[0]", "missing field `at`"),
            (
                with(
                    "cutovers",
                    json!([
                        {"tenant": TENANT, "provider": "x", "at": "2026-12-01T00:00:00Z"},
                        {"tenant": TENANT, "provider": "y", "at": "2026-12-01T01:00:00+01:00"},
                    ]),
                ),
                "cutovers[1].at",
                "already has a cutover at this instant",
            ),
        ];
        for (config, key, words) in cases {
            let message = Config::parse(&config.to_string()).expect_err(&config.to_string());
            assert!(message.contains(&format!("`{key}")), "{config}: {message}");
            assert!(message.contains(words), "{config}: {message}");
            assert!(!message.contains("line 1"), "{config}: {message}");
        }
        assert_eq!(Config::parse("{}").unwrap_err(), "The routing configuration is invalid: missing field `tenants`.");
        assert!(Config::parse("not json").is_err());
    }
}

// Each call's values are freed before the next: a per-call arena serves them.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: fhirgate_guest_sdk::alloc::CallArena = fhirgate_guest_sdk::alloc::CallArena::new();
