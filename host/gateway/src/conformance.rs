//! `fhirgate check-provider`: runs the app's whole call set (interfaces.md)
//! against a provider through the partner's shaping module, exactly as the
//! gateway would, and reports per resource and per face what works, which
//! required fields are missing and which search parameters the provider
//! refuses. The app does not load without Patient, so a Patient failure is
//! what makes the check fail.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::directory::ProviderRoute;
use crate::policy::BoundModule;
use fhirgate_core::fhir::Version;
use fhirgate_sandbox::CallContext;
use fhirgate_sandbox::bindings::shaping::{Exchange, UpstreamRequest};
use fhirgate_sandbox::bindings::types::{Interaction, Param};
use fhirgate_upstream::reads::{ProviderReads, ReadCache};
use fhirgate_upstream::{ProviderSettings, Upstream, UpstreamAuth};

/// What to check.
pub struct CheckOptions {
    pub base_url: String,
    pub fhir_version: Version,
    /// A bearer token the provider accepts, if it needs one.
    pub token: Option<String>,
    /// The patient to read the app's calls for; by default the first one a
    /// Patient search returns.
    pub patient: Option<String>,
    pub timeout: Duration,
}

/// The outcome of one call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Answered, with every required field the answer's resources need.
    Ok,
    /// Answered, but without data to judge (an empty searchset).
    NoData,
    /// Answered without some required fields.
    MissingFields,
    /// The shaping module or the provider refused a search parameter.
    UnsupportedParameter,
    /// The provider answered as if a search parameter had not been sent
    /// (another patient's data, more than `_count`, the wrong order): the
    /// app would show wrong data.
    ParameterIgnored,
    /// The provider does not serve the resource.
    NotServed,
    /// Anything else: the provider failed, or the answer could not be shaped.
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub resource: &'static str,
    pub face: &'static str,
    pub call: String,
    pub verdict: Verdict,
    pub details: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub provider: String,
    pub fhir_version: &'static str,
    pub patient: Option<String>,
    pub calls: Vec<CallReport>,
    /// Whether the app would load (Patient works on both faces).
    pub passed: bool,
    /// When it ran, seconds since the Unix epoch.
    pub checked_at: u64,
}

impl Report {
    /// The report with the patient it read for named nowhere (replaced by
    /// `{patient}`), to be kept or shown beyond whoever ran it.
    pub fn without_patient(mut self) -> Report {
        if let Some(patient) = self.patient.take() {
            let hide = |s: &mut String| *s = s.replace(&patient, "{patient}");
            for c in &mut self.calls {
                hide(&mut c.call);
                c.details.iter_mut().for_each(hide);
            }
            self.patient = Some("{patient}".into());
        }
        self
    }

    /// Whether the app would load: Patient works on both faces.
    pub fn app_loads(&self) -> bool {
        self.calls.iter().filter(|c| c.resource == "Patient").all(|c| c.verdict == Verdict::Ok)
    }

    /// Resources with at least one call that is neither ok nor without data.
    pub fn failing_resources(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for c in &self.calls {
            if !matches!(c.verdict, Verdict::Ok | Verdict::NoData) && !out.contains(&c.resource) {
                out.push(c.resource);
            }
        }
        out
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "provider {} (FHIR {}), patient {}\n\n",
            self.provider,
            self.fhir_version,
            self.patient.as_deref().unwrap_or("none found")
        );
        out += &format!("{:<20} {:<6} {:<22} {}\n", "resource", "face", "result", "call");
        for c in &self.calls {
            let verdict = serde_json::to_value(&c.verdict).ok().and_then(|v| v.as_str().map(str::to_owned));
            out += &format!("{:<20} {:<6} {:<22} {}\n", c.resource, c.face, verdict.unwrap_or_default(), c.call);
            for d in &c.details {
                out += &format!("{:<50} - {d}\n", "");
            }
        }
        let failing = self.failing_resources();
        out += "\n";
        if !failing.is_empty() {
            out += &format!("Not working: {}.\n", failing.join(", "));
        }
        if !self.app_loads() {
            out += "Patient does not work: the app would not load.\n";
        } else if failing.is_empty() {
            out += "Every call of the app works.\n";
        }
        out
    }
}

/// One call of the app: the resource it is about, the path, the parameters.
type Call = (&'static str, String, Vec<(&'static str, String)>);

/// The app's calls on `face` (interfaces.md).
fn calls(face: Version, patient: &str) -> Vec<Call> {
    let p = || ("patient", patient.to_owned());
    let (meds, sort) = match face {
        Version::Dstu2 => ("MedicationOrder", ("_sort:desc", "date".to_owned())),
        _ => ("MedicationRequest", ("_sort", "-date".to_owned())),
    };
    vec![
        ("Patient", "Patient".into(), vec![("_id", patient.to_owned())]),
        ("Patient", format!("Patient/{patient}"), vec![]),
        ("Observation", "Observation".into(), vec![p(), sort, ("category", "vital-signs".into())]),
        ("Condition", "Condition".into(), vec![p(), ("_count", "10".into())]),
        ("Encounter", "Encounter".into(), vec![p(), ("_sort:desc", "date".into()), ("_count", "10".into())]),
        ("AllergyIntolerance", "AllergyIntolerance".into(), vec![p()]),
        (meds, meds.into(), vec![p(), ("_count", "10".into())]),
        ("Coverage", "Coverage".into(), vec![p()]),
    ]
}

/// The required fields of interfaces.md a resource lacks on `face`.
pub fn missing_fields(face: Version, r: &Value) -> Vec<&'static str> {
    let has = |ptr: &str| r.pointer(ptr).is_some_and(|v| !v.is_null());
    let mut missing = Vec::new();
    let mut need = |ok: bool, field: &'static str| {
        if !ok {
            missing.push(field);
        }
    };
    let dstu2 = face == Version::Dstu2;
    match r.get("resourceType").and_then(Value::as_str).unwrap_or_default() {
        "Patient" => {
            need(has("/name/0/family"), "name.family");
            need(has("/name/0/given/0"), "name.given");
            need(has("/gender"), "gender");
            need(has("/birthDate"), "birthDate");
            let mrn = r["identifier"].as_array().is_some_and(|ids| {
                ids.iter().any(|i| i["type"]["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "MR")))
            });
            need(mrn, "identifier (MR)");
        }
        "Observation" => {
            need(has("/effectiveDateTime") || has("/effectivePeriod"), "effective[x]");
            need(has("/code/coding/0/code"), "code.coding.code");
            need(has("/valueQuantity/value") || has("/component/0/valueQuantity/value"), "valueQuantity.value");
        }
        "Condition" => need(has("/code/coding/0/display"), "code.coding[0].display"),
        "Encounter" => {
            need(has("/status"), "status");
            need(has("/type/0/coding/0/display"), "type[0].coding[0].display");
            if r["location"].is_array() {
                need(has("/location/0/location/display"), "location[0].location.display");
            }
        }
        "AllergyIntolerance" if dstu2 => {
            need(has("/substance/text"), "substance.text");
            need(has("/substance/coding/0/display"), "substance.coding[0].display");
            need(has("/status"), "status");
        }
        "AllergyIntolerance" => {
            need(has("/code/text"), "code.text");
            need(has("/code/coding/0/display"), "code.coding[0].display");
            need(has("/clinicalStatus"), "clinicalStatus");
            need(has("/verificationStatus"), "verificationStatus");
        }
        "MedicationOrder" => {
            need(has("/dateWritten"), "dateWritten");
            need(has("/prescriber/display"), "prescriber.display");
            need(
                has("/medicationReference/display") || has("/medicationCodeableConcept/text"),
                "medicationReference.display or medicationCodeableConcept.text",
            );
        }
        "MedicationRequest" => {
            need(has("/authoredOn"), "authoredOn");
            need(has("/requester/agent/display"), "requester.agent.display");
            need(
                has("/medicationReference/display") || has("/medicationCodeableConcept/text"),
                "medicationReference.display or medicationCodeableConcept.text",
            );
        }
        "Coverage" if dstu2 => {
            need(has("/plan") || has("/issuer"), "plan or payor");
        }
        "Coverage" => {
            need(has("/grouping/groupDisplay"), "grouping.groupDisplay");
            need(has("/grouping/planDisplay"), "grouping.planDisplay");
            need(has("/period"), "period");
            need(has("/subscriberId"), "subscriberId");
        }
        _ => {}
    }
    missing
}

/// Runs the check with `shaper`, with a bearer token from `options` if it
/// has one.
pub async fn check(shaper: &BoundModule, options: &CheckOptions) -> anyhow::Result<Report> {
    let upstream = Upstream::new(64 * 1024 * 1024);
    let mut settings = ProviderSettings::new("check-provider", options.timeout);
    if let Some(token) = &options.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("--token is not a valid header value"))?;
        settings.auth = Some(UpstreamAuth::Header { name: http::header::AUTHORIZATION, value });
    }
    check_with(shaper, upstream, settings, &options.base_url, options.fhir_version, options.patient.clone()).await
}

/// The live provider check of an approval: the app's calls against a
/// directory provider as requests will reach it (its credentials, CA and
/// address policy), on `upstream`, under an id of its own so that failing
/// calls do not open the provider's breaker.
pub async fn check_route(shaper: &BoundModule, upstream: &Upstream, route: &ProviderRoute) -> anyhow::Result<Report> {
    let mut settings = route.settings.clone();
    settings.id = format!("{}#check", route.id);
    settings.retry.max_retries = 0;
    check_with(shaper, upstream.clone(), settings, &route.base_url, route.fhir_version, None).await
}

/// The live provider check of an approval of directory provider `provider`
/// (its credentials, CA and address policy), through `shaper`, for the
/// declaration whose digest is `spec_sha256`: the report to keep with the
/// approval, naming no patient (it is shown in integration records).
pub async fn live_check(
    dir: &crate::directory::Directory,
    shaper: &BoundModule,
    upstream: &Upstream,
    provider: &str,
    spec_sha256: &str,
) -> Result<Value, crate::directory::onboarding::DirectoryError> {
    use crate::directory::onboarding::DirectoryError;
    let route = dir.snapshot().provider(provider).ok_or_else(|| {
        DirectoryError::Conflict(format!("Provider `{provider}` is unknown or its settings could not be loaded."))
    })?;
    let report =
        check_route(shaper, upstream, &route).await.map_err(|e| DirectoryError::Validation(format!("{e:#}")))?;
    let mut value = serde_json::to_value(report.without_patient()).unwrap_or_default();
    value["spec_sha256"] = Value::from(spec_sha256);
    Ok(value)
}

async fn check_with(
    shaper: &BoundModule,
    upstream: Upstream,
    mut settings: ProviderSettings,
    base_url: &str,
    fhir_version: Version,
    patient: Option<String>,
) -> anyhow::Result<Report> {
    // One failing resource must not trip a breaker for the next one.
    settings.breaker.failure_threshold = u32::MAX;
    let base = base_url.trim_end_matches('/').to_owned();
    let checker = Checker { shaper, upstream, settings, base, version: fhir_version, cache: Arc::default() };

    let (patient, why_none) = match patient {
        Some(p) => (Some(p), String::new()),
        None => match checker.first_patient().await {
            Ok(Some(p)) => (Some(p), String::new()),
            Ok(None) => (None, "a Patient search found no patient; name one with --patient".to_owned()),
            Err(e) => (None, e),
        },
    };
    let mut report = Report {
        provider: checker.base.clone(),
        fhir_version: fhir_version.number(),
        patient: patient.clone(),
        calls: Vec::new(),
        passed: false,
        checked_at: fhirgate_core::clock::now_seconds(),
    };
    for face in fhirgate_core::fhir::FACES {
        let Some(patient) = &patient else {
            report.calls.push(CallReport {
                resource: "Patient",
                face: face.face(),
                call: "Patient?_count=1".into(),
                verdict: Verdict::Failed,
                details: vec![why_none.clone()],
            });
            continue;
        };
        for (resource, path, params) in calls(face, patient) {
            report.calls.push(checker.run(face, resource, &path, &params).await);
        }
    }
    report.passed = report.app_loads();
    Ok(report)
}

struct Checker<'a> {
    shaper: &'a BoundModule,
    upstream: Upstream,
    settings: ProviderSettings,
    base: String,
    version: Version,
    cache: Arc<ReadCache>,
}

impl Checker<'_> {
    fn ctx(&self) -> CallContext {
        CallContext {
            partner: "check-provider".into(),
            module: self.shaper.module.name().clone(),
            digest: self.shaper.module.digest().clone(),
            config_json: self.shaper.config_json.clone(),
            issuer: Arc::default(),
            directory: Arc::new(fhirgate_sandbox::StaticDirectory::default()),
            reads: None,
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            fixed_now_ms: None,
            counted: false,
        }
    }

    fn exchange(&self, face: Version, interaction: Interaction) -> Exchange {
        Exchange {
            client_version: fhirgate_sandbox::wit_version(face),
            upstream_version: fhirgate_sandbox::wit_version(self.version),
            interaction,
            gateway_base: format!("https://gateway.invalid/{}", face.face()),
            upstream_base: self.base.clone(),
        }
    }

    fn accept(&self) -> &'static str {
        match self.version {
            Version::Dstu2 => "application/json+fhir",
            _ => "application/fhir+json",
        }
    }

    /// The id of the first patient a plain Patient search returns; why the
    /// search failed, if it did.
    async fn first_patient(&self) -> Result<Option<String>, String> {
        let url = format!("{}/Patient?_count=1", self.base);
        let resp = self
            .upstream
            .get(&self.settings, &url, HeaderMap::new(), self.accept())
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status.is_success() {
            return Err(format!("GET {url} answered {}", resp.status));
        }
        let bundle: Value = serde_json::from_slice(&resp.body).map_err(|_| format!("GET {url}: not JSON"))?;
        Ok(bundle
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource"))
            .find(|r| r["resourceType"] == "Patient")
            .and_then(|r| r["id"].as_str())
            .map(str::to_owned))
    }

    async fn run(&self, face: Version, resource: &'static str, path: &str, params: &[(&str, String)]) -> CallReport {
        let interaction = if path.contains('/') { Interaction::Read } else { Interaction::Search };
        let shown = if params.is_empty() {
            path.to_owned()
        } else {
            let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{path}?{}", q.join("&"))
        };
        let report = |verdict, details: Vec<String>| CallReport {
            resource,
            face: face.face(),
            call: shown.clone(),
            verdict,
            details,
        };
        let exchange = self.exchange(face, interaction);
        let request = UpstreamRequest {
            path: path.to_owned(),
            params: params.iter().map(|(k, v)| Param { name: (*k).to_owned(), value: v.clone() }).collect(),
        };
        let shaped = match self.shaper.module.shape_request(self.ctx(), &exchange, &request).await {
            Ok(Ok(r)) => r,
            Ok(Err(d)) if d.code == "not-supported" || d.status == 400 => {
                return report(Verdict::UnsupportedParameter, vec![format!("the shaping module: {}", d.message)]);
            }
            Ok(Err(d)) => return report(Verdict::Failed, vec![format!("the shaping module refused: {}", d.message)]),
            Err(e) => return report(Verdict::Failed, vec![format!("the shaping module failed: {e}")]),
        };
        let mut url = format!("{}/{}", self.base, shaped.path);
        if !shaped.params.is_empty() {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for p in &shaped.params {
                ser.append_pair(&p.name, &p.value);
            }
            url = format!("{url}?{}", ser.finish());
        }
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-request-id"), HeaderValue::from_static("check-provider"));
        let answer = match self.upstream.get(&self.settings, &url, headers, self.accept()).await {
            Ok(a) => a,
            Err(e) => return report(Verdict::Failed, vec![format!("GET {url}: {e}")]),
        };
        let diagnostics = || {
            serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|v| v.pointer("/issue/0/diagnostics").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default()
        };
        match answer.status.as_u16() {
            200 => {}
            404 | 405 | 501 => {
                return report(
                    Verdict::NotServed,
                    vec![format!("the provider answered {}: {}", answer.status, diagnostics())],
                );
            }
            400 => {
                return report(
                    Verdict::UnsupportedParameter,
                    vec![format!("the provider refused the search: {}", diagnostics())],
                );
            }
            _ => {
                return report(
                    Verdict::Failed,
                    vec![format!("the provider answered {}: {}", answer.status, diagnostics())],
                );
            }
        }
        let mut ctx = self.ctx();
        let tenant = "check-provider";
        ctx.reads = Some(Arc::new(ProviderReads::new(
            self.upstream.clone(),
            &self.settings,
            &self.base,
            self.accept(),
            tenant,
            HeaderMap::new(),
            &ctx.request_id,
            self.cache.clone(),
        )));
        let out = match self.shaper.module.shape_response(ctx, &exchange, 200, &answer.body).await {
            Ok(Ok(s)) if s.status == 200 => s.body,
            Ok(Ok(s)) => return report(Verdict::Failed, vec![format!("shaped into status {}", s.status)]),
            Ok(Err(d)) => return report(Verdict::Failed, vec![format!("the shaping module refused: {}", d.message)]),
            Err(e) => return report(Verdict::Failed, vec![format!("the shaping module failed: {e}")]),
        };
        let Ok(out) = serde_json::from_slice::<Value>(&out) else {
            return report(Verdict::Failed, vec!["the shaped answer is not JSON".into()]);
        };
        // Matches only: an OperationOutcome saying "nothing found" is not data.
        let resources: Vec<&Value> = if out["resourceType"] == "Bundle" {
            out["entry"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter(|e| e["search"]["mode"] != "outcome")
                        .map(|e| &e["resource"])
                        .filter(|r| r["resourceType"] != "OperationOutcome")
                        .collect()
                })
                .unwrap_or_default()
        } else {
            vec![&out]
        };
        if resources.is_empty() {
            return report(Verdict::NoData, vec!["the search found nothing for this patient".into()]);
        }
        let ignored = disregarded_parameters(&out, path, params);
        if !ignored.is_empty() {
            return report(Verdict::ParameterIgnored, ignored);
        }
        let mut details: Vec<String> = Vec::new();
        for r in &resources {
            for field in missing_fields(face, r) {
                let line = format!("{field} missing");
                if !details.contains(&line) {
                    details.push(line);
                }
            }
        }
        if details.is_empty() { report(Verdict::Ok, Vec::new()) } else { report(Verdict::MissingFields, details) }
    }
}

/// What the shaped answer `out` to the call (`path`, `params`, as the app
/// sends them) shows the provider did not apply: one line per parameter.
/// A provider that skips a parameter it does not support answers 200 with
/// the wrong data, which only the data itself tells.
fn disregarded_parameters(out: &Value, path: &str, params: &[(&str, String)]) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((rt, id)) = path.split_once('/') {
        if out["resourceType"] != rt || out["id"] != id {
            found.push(format!("reading {path} answered {} {}", out["resourceType"], out["id"]));
        }
        return found;
    }
    // The matches of the search, as the app lists them.
    let matches: Vec<&Value> = out["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| matches!(e["search"]["mode"].as_str(), None | Some("match")))
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == path)
        .collect();
    let total = matches.len();
    for (name, value) in params {
        let base = name.split(':').next().unwrap_or_default();
        let others = |keep: &dyn Fn(&Value) -> bool| matches.iter().filter(|r| !keep(r)).count();
        match (base, value.as_str()) {
            ("_id", id) => {
                let n = others(&|r| r["id"] == id);
                if n > 0 {
                    found.push(format!("`_id`: {n} of {total} matches have another id"));
                }
            }
            ("patient", patient) => {
                let n = others(&|r| refers_to_patient(r, patient));
                if n > 0 {
                    found.push(format!("`patient`: {n} of {total} matches are about another patient"));
                }
            }
            ("_count", count) => {
                if let Ok(count) = count.parse::<usize>()
                    && total > count
                {
                    found.push(format!("`_count={count}`: {total} matches on one page"));
                }
            }
            ("category", code) => {
                let n = others(&|r| has_code(&r["category"], code));
                if n > 0 {
                    found.push(format!("`category={code}`: {n} of {total} matches are in another category"));
                }
            }
            ("_sort", "-date") | ("_sort", "date") if name.ends_with(":desc") || value.starts_with('-') => {
                let dates: Vec<&str> = matches.iter().filter_map(|r| clinical_date(r)).collect();
                if dates.windows(2).any(|w| w[0] < w[1]) {
                    found.push(format!("`{name}={value}`: the matches are not newest first"));
                }
            }
            _ => {}
        }
    }
    found
}

/// Whether `resource` holds a Reference to `Patient/{id}` (relative or
/// absolute, with or without a version).
fn refers_to_patient(resource: &Value, id: &str) -> bool {
    match resource {
        Value::Object(o) => {
            let here = o.get("reference").and_then(Value::as_str).is_some_and(|r| {
                let r = r.split("/_history/").next().unwrap_or(r);
                r.strip_suffix(id)
                    .and_then(|head| head.strip_suffix("Patient/"))
                    .is_some_and(|head| head.is_empty() || head.ends_with('/'))
            });
            here || o.values().any(|v| refers_to_patient(v, id))
        }
        Value::Array(items) => items.iter().any(|v| refers_to_patient(v, id)),
        _ => false,
    }
}

/// Whether a CodeableConcept (or a list of them) has a coding with `code`.
fn has_code(concepts: &Value, code: &str) -> bool {
    let one = |cc: &Value| cc["coding"].as_array().into_iter().flatten().any(|c| c["code"] == code);
    match concepts {
        Value::Array(items) => items.iter().any(one),
        cc => one(cc),
    }
}

/// The day an Observation or Encounter happened, as the app sorts them.
fn clinical_date(r: &Value) -> Option<&str> {
    ["/effectiveDateTime", "/effectivePeriod/start", "/issued", "/period/start"]
        .iter()
        .find_map(|p| r.pointer(p).and_then(Value::as_str))
        .map(|d| d.get(..10).unwrap_or(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_fields_per_face() {
        let patient = json!({
            "resourceType": "Patient", "name": [{ "family": ["Chau"], "given": ["Hugh"] }], "gender": "male",
            "birthDate": "1970-01-01",
            "identifier": [{ "type": { "coding": [{ "code": "MR" }] }, "value": "1" }],
        });
        assert!(missing_fields(Version::Dstu2, &patient).is_empty());
        let bare = json!({ "resourceType": "Patient", "name": [{ "family": "Chau" }] });
        assert_eq!(missing_fields(Version::Stu3, &bare), vec!["name.given", "gender", "birthDate", "identifier (MR)"]);
        let coverage = json!({ "resourceType": "Coverage", "subscriberId": "x" });
        assert_eq!(
            missing_fields(Version::Stu3, &coverage),
            vec!["grouping.groupDisplay", "grouping.planDisplay", "period"]
        );
    }

    #[test]
    fn answers_that_disregard_a_parameter_are_told_apart() {
        let obs = |id: &str, patient: &str, day: &str, category: &str| {
            json!({"fullUrl": format!("Observation/{id}"), "search": {"mode": "match"}, "resource": {
                "resourceType": "Observation", "id": id,
                "subject": {"reference": format!("https://p.example/fhir/Patient/{patient}/_history/2")},
                "effectiveDateTime": day,
                "category": [{"coding": [{"code": category}]}],
            }})
        };
        let bundle = |entries: Vec<Value>| json!({"resourceType": "Bundle", "type": "searchset", "entry": entries});
        let params = [
            ("patient", "pat-1".to_owned()),
            ("_sort", "-date".to_owned()),
            ("category", "vital-signs".to_owned()),
            ("_count", "2".to_owned()),
        ];
        let good = bundle(vec![
            obs("a", "pat-1", "2026-03-01T10:00:00Z", "vital-signs"),
            obs("b", "pat-1", "2026-02-01", "vital-signs"),
            // Not a match: its patient and category do not count.
            json!({"search": {"mode": "include"}, "resource": {"resourceType": "Observation", "id": "x"}}),
        ]);
        assert!(disregarded_parameters(&good, "Observation", &params).is_empty());

        let bad = bundle(vec![
            obs("a", "pat-1", "2026-01-01", "vital-signs"),
            obs("b", "pat-11", "2026-02-01", "laboratory"),
            obs("c", "pat-1", "2026-03-01", "vital-signs"),
        ]);
        assert_eq!(
            disregarded_parameters(&bad, "Observation", &params),
            vec![
                "`patient`: 1 of 3 matches are about another patient",
                "`_sort=-date`: the matches are not newest first",
                "`category=vital-signs`: 1 of 3 matches are in another category",
                "`_count=2`: 3 matches on one page",
            ]
        );

        let patients = bundle(vec![json!({"resource": {"resourceType": "Patient", "id": "pat-2"}})]);
        assert_eq!(
            disregarded_parameters(&patients, "Patient", &[("_id", "pat-1".to_owned())]),
            vec!["`_id`: 1 of 1 matches have another id"]
        );
        let read = json!({"resourceType": "Patient", "id": "pat-2"});
        assert_eq!(disregarded_parameters(&read, "Patient/pat-1", &[]).len(), 1);
        assert!(disregarded_parameters(&read, "Patient/pat-2", &[]).is_empty());
    }
}
