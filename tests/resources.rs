//! Every resource and search of the app's interfaces, on both faces, from an
//! R4, an STU3 and a DSTU2 provider: each answer parses in the face's FHIR
//! version with an independent FHIR library, and carries the fields the app
//! requires.

mod support;

use serde_json::Value;
use support::{Setup, http, provider_with, validate_fhir_all};

const T_R4: &str = "a4a4a4a4-0000-4000-8000-000000000004";
const T_STU3: &str = "a3a3a3a3-0000-4000-8000-000000000003";
const T_DSTU2: &str = "a2a2a2a2-0000-4000-8000-000000000002";
const PATIENT: &str = "pat-007";

/// The app's calls on `face`, as interfaces.md lists them: (label, method,
/// path and query, form body).
fn calls(face: &str) -> Vec<(&'static str, &'static str, String, Option<String>)> {
    let meds = if face == "dstu2" { "MedicationOrder" } else { "MedicationRequest" };
    let sort = if face == "dstu2" { "_sort:desc=date" } else { "_sort=-date" };
    vec![
        ("patient search", "POST", "Patient/_search".into(), Some("given=hugh&family=chau".into())),
        ("patient read", "GET", format!("Patient/{PATIENT}"), None),
        ("vital signs", "GET", format!("Observation?patient={PATIENT}&{sort}&category=vital-signs"), None),
        ("conditions", "GET", format!("Condition?patient={PATIENT}&_count=5"), None),
        ("encounters", "GET", format!("Encounter?patient={PATIENT}&_sort:desc=date&_count=5"), None),
        ("allergies", "GET", format!("AllergyIntolerance?patient={PATIENT}"), None),
        ("medications", "GET", format!("{meds}?patient={PATIENT}&_count=5"), None),
        ("coverage", "GET", format!("Coverage?patient={PATIENT}"), None),
        ("location read", "GET", "Location/loc-1".into(), None),
    ]
}

fn entries(bundle: &Value) -> Vec<&Value> {
    bundle["entry"].as_array().map(|e| e.iter().map(|e| &e["resource"]).collect()).unwrap_or_default()
}

/// The required fields of interfaces.md, on `face`, for one resource.
fn assert_required(face: &str, r: &Value, label: &str) {
    let has = |ptr: &str| r.pointer(ptr).is_some_and(|v| !v.is_null());
    let rt = r["resourceType"].as_str().unwrap_or_default();
    let ok = match rt {
        "Patient" => {
            let family =
                if face == "dstu2" { r["name"][0]["family"].is_array() } else { r["name"][0]["family"].is_string() };
            let mrn = r["identifier"].as_array().is_some_and(|ids| {
                ids.iter().any(|i| i["type"]["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "MR")))
            });
            family && has("/name/0/given/0") && has("/gender") && has("/birthDate") && mrn
        }
        "Observation" => {
            let effective = has("/effectiveDateTime") || has("/effectivePeriod");
            let value = has("/valueQuantity/value") || has("/component/0/valueQuantity/value");
            let category = if face == "dstu2" { r["category"].is_object() } else { r["category"].is_array() };
            effective && has("/code/coding/0/code") && value && category
        }
        "Condition" => has("/code/coding/0/display"),
        "Encounter" => {
            let subject = if face == "dstu2" { has("/patient") && !has("/subject") } else { has("/subject") };
            has("/status") && has("/type/0/coding/0/display") && subject && has("/location/0/location/display")
        }
        "AllergyIntolerance" if face == "dstu2" => {
            has("/substance/text") && has("/substance/coding/0/display") && has("/status")
        }
        "AllergyIntolerance" => {
            has("/code/text") && has("/code/coding/0/display") && has("/clinicalStatus") && has("/verificationStatus")
        }
        "MedicationOrder" => {
            has("/dateWritten")
                && has("/prescriber/display")
                && (has("/medicationReference/display") || has("/medicationCodeableConcept/text"))
        }
        "MedicationRequest" => {
            has("/authoredOn")
                && has("/requester/agent/display")
                && (has("/medicationReference/display") || has("/medicationCodeableConcept/text"))
        }
        "Coverage" if face == "dstu2" => (has("/plan") || has("/issuer")) && has("/subscriberId"),
        "Coverage" => {
            has("/grouping/groupDisplay") && has("/grouping/planDisplay") && has("/period") && has("/subscriberId")
        }
        "Location" => has("/name"),
        other => panic!("{label}: unexpected resource type {other}"),
    };
    assert!(ok, "{label} on {face}: a required field is missing: {r}");
}

#[test]
fn every_call_of_the_app_answers_valid_fhir_with_its_required_fields_from_every_dialect() {
    let (_r4, r4) = provider_with(&["--fhir-version", "r4"]);
    let (_stu3, stu3) = provider_with(&["--fhir-version", "stu3"]);
    let (_dstu2, dstu2) = provider_with(&["--fhir-version", "dstu2"]);
    let gw = Setup {
        tenants: &[(T_R4, "hospital-r4"), (T_STU3, "hospital-stu3"), (T_DSTU2, "hospital-dstu2")],
        providers: &[("hospital-r4", &r4), ("hospital-stu3", &stu3), ("hospital-dstu2", &dstu2)],
        versions: &[("hospital-r4", "r4"), ("hospital-stu3", "stu3"), ("hospital-dstu2", "dstu2")],
        client_tenants: &[T_R4, T_STU3, T_DSTU2],
        ..Default::default()
    }
    .serve();
    let mut received: Vec<(&str, String, Value)> = Vec::new();
    for (tenant, dialect, provider) in [(T_R4, "r4", &r4), (T_STU3, "stu3", &stu3), (T_DSTU2, "dstu2", &dstu2)] {
        let token = gw.token(tenant);
        for face in ["stu3", "dstu2"] {
            for (label, method, path, form) in calls(face) {
                let url = format!("{}/{face}/{path}", gw.base);
                let req = match form {
                    Some(body) => {
                        http().post(&url).header("content-type", "application/x-www-form-urlencoded").body(body)
                    }
                    None => http().request(method.parse().unwrap(), &url),
                };
                let resp = req.bearer_auth(&token).send().unwrap();
                let status = resp.status();
                let body: Value = resp.json().unwrap_or(Value::Null);
                let what = format!("{label} ({dialect} provider → {face})");
                assert_eq!(status, 200, "{what}: {body}");
                if body["resourceType"] == "Bundle" {
                    assert!(body["total"].is_u64(), "{what}: a searchset carries `total`");
                    let found = entries(&body);
                    assert!(!found.is_empty(), "{what}: the demo patient has data: {body}");
                    for r in found {
                        assert_required(face, r, &what);
                    }
                    if path.contains("patient=") {
                        // The oracle: the provider's own answer to the same
                        // question, asked in its own dialect.
                        let rt = path.split('?').next().unwrap();
                        let rt = match (rt, dialect) {
                            ("MedicationRequest" | "MedicationOrder", "dstu2") => "MedicationOrder",
                            ("MedicationRequest" | "MedicationOrder", _) => "MedicationRequest",
                            (rt, _) => rt,
                        };
                        let category = if rt == "Observation" { "&category=vital-signs" } else { "" };
                        let sort = match (path.contains("_sort"), dialect) {
                            (false, _) => "",
                            (true, "dstu2") => "&_sort:desc=date",
                            (true, _) => "&_sort=-date",
                        };
                        let direct: Value = http()
                            .get(format!("{provider}/{rt}?patient={PATIENT}{category}{sort}&_count=100"))
                            .send()
                            .unwrap()
                            .json()
                            .unwrap();
                        let all: Vec<&str> = entries(&direct).iter().filter_map(|r| r["id"].as_str()).collect();
                        let got: Vec<&str> = entries(&body).iter().filter_map(|r| r["id"].as_str()).collect();
                        assert_eq!(body["total"], direct["total"], "{what}: total as the provider counts it");
                        assert!(got.iter().all(|id| all.contains(id)), "{what}: {got:?} not all in {all:?}");
                        let page = if path.contains("_count=5") { all.len().min(5) } else { all.len() };
                        assert_eq!(got.len(), page, "{what}: {got:?} vs {all:?}");
                        if !sort.is_empty() {
                            assert_eq!(got.as_slice(), &all[..page], "{what}: in the provider's newest-first order");
                        }
                    }
                    if label == "vital signs" {
                        let dates: Vec<&str> = entries(&body)
                            .iter()
                            .filter_map(|o| o["effectiveDateTime"].as_str().or(o["effectivePeriod"]["start"].as_str()))
                            .collect();
                        assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{what}: newest first: {dates:?}");
                    }
                } else {
                    assert_required(face, &body, &what);
                }
                let text = body.to_string();
                for base in [&r4, &stu3, &dstu2] {
                    assert!(!text.contains(base.as_str()), "{what}: the provider's URL leaked");
                }
                received.push((face, what, body));
            }
        }
    }
    for face in ["stu3", "dstu2"] {
        let bodies: Vec<(String, Value)> = received
            .iter()
            .filter(|(f, _, _)| *f == face)
            .map(|(_, what, body)| (what.clone(), body.clone()))
            .collect();
        validate_fhir_all(face, &bodies);
    }
}

#[test]
fn a_parameter_the_gateway_cannot_honour_is_refused_not_dropped() {
    let (_p, base) = provider_with(&[]);
    let tenant = T_R4;
    let gw = Setup {
        tenants: &[(tenant, "p")],
        providers: &[("p", &base)],
        client_tenants: &[tenant],
        ..Default::default()
    }
    .serve();
    let token = gw.token(tenant);
    for (face, path) in [
        ("stu3", "Observation?patient=pat-001&code=8867-4"),
        ("dstu2", "Condition?patient=pat-001&onset=2020"),
        ("stu3", "Patient?shoe-size=9"),
    ] {
        let resp = http().get(format!("{}/{face}/{path}", gw.base)).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 400, "{face} {path}");
        let body: Value = resp.json().unwrap();
        let diag = support::assert_outcome(&body);
        // Refused by the gateway itself, not passed on for the provider to refuse.
        assert!(diag.contains("on this server"), "{face} {path}: {diag}");
        let name = path.split('&').next_back().unwrap().split('=').next().unwrap();
        let name = name.rsplit('?').next().unwrap();
        assert!(diag.contains(name), "{face} {path}: {diag}");
        validate_fhir_all(face, &[(path.to_owned(), body)]);
    }
}

/// Runs `fhirgate check-provider … --json`; the exit code and the report.
fn check_provider(base: &str, version: &str) -> (i32, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(["check-provider", base, "--fhir-version", version, "--json"])
        .current_dir(support::repo_root())
        .env("FHIRGATE_LOG", "warn")
        .output()
        .expect("running check-provider");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), report)
}

fn not_working(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in report["calls"].as_array().unwrap() {
        let resource = c["resource"].as_str().unwrap().to_owned();
        if !matches!(c["verdict"].as_str(), Some("ok" | "no-data")) && !out.contains(&resource) {
            out.push(resource);
        }
    }
    out
}

#[test]
fn check_provider_passes_every_dialect_and_names_a_missing_resource() {
    for version in ["r4", "stu3", "dstu2"] {
        let (_p, base) = provider_with(&["--fhir-version", version]);
        let (code, report) = check_provider(&base, version);
        assert_eq!(code, 0, "{version}: {report}");
        assert!(not_working(&report).is_empty(), "{version}: {report}");
        assert_eq!(report["calls"].as_array().unwrap().len(), 16, "8 calls on each face");
    }
    // A provider without Coverage: exactly Coverage is reported, and the app
    // still loads.
    let (_p, base) = provider_with(&["--fhir-version", "stu3", "--without", "Coverage"]);
    let (code, report) = check_provider(&base, "stu3");
    assert_eq!(code, 0, "{report}");
    assert_eq!(not_working(&report), vec!["Coverage"], "{report}");
    // Without Patient the app would not load: the check fails.
    let (_p, base) = provider_with(&["--fhir-version", "r4", "--without", "Patient"]);
    let (code, report) = check_provider(&base, "r4");
    assert_eq!(code, 2, "{report}");
    assert!(not_working(&report).contains(&"Patient".to_owned()), "{report}");
}

/// The calls `check-provider` judged with `verdict`, as `resource face`.
fn calls_judged(report: &Value, verdict: &str) -> Vec<String> {
    report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == verdict)
        .map(|c| format!("{} {}", c["resource"].as_str().unwrap(), c["face"].as_str().unwrap()))
        .collect()
}

#[test]
fn check_provider_catches_a_provider_that_skips_parameters() {
    // A provider that answers every search as if `patient` had not been
    // sent: every patient's data, which the app would show as this one's.
    let (_p, base) = provider_with(&["--fhir-version", "stu3", "--ignore", "patient"]);
    let (code, report) = check_provider(&base, "stu3");
    assert_eq!(code, 0, "Patient itself works: {report}");
    let ignored = calls_judged(&report, "parameter-ignored");
    // STU3 Coverage is searched by `beneficiary`, which the provider applies.
    let expected: Vec<String> = [
        "Observation stu3",
        "Condition stu3",
        "Encounter stu3",
        "AllergyIntolerance stu3",
        "MedicationRequest stu3",
        "Observation dstu2",
        "Condition dstu2",
        "Encounter dstu2",
        "AllergyIntolerance dstu2",
        "MedicationOrder dstu2",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(ignored, expected, "{report}");
    for c in report["calls"].as_array().unwrap().iter().filter(|c| c["verdict"] == "parameter-ignored") {
        assert!(c["details"][0].as_str().unwrap().starts_with("`patient`: "), "{c}");
    }

    // One that ignores `_sort`: the vital signs come oldest first. (The
    // patient checked, pat-001, has a single Encounter: its order tells
    // nothing.)
    let (_p, base) = provider_with(&["--fhir-version", "r4", "--ignore", "_sort"]);
    let (code, report) = check_provider(&base, "r4");
    assert_eq!(code, 0, "{report}");
    assert_eq!(calls_judged(&report, "parameter-ignored"), vec!["Observation stu3", "Observation dstu2"], "{report}");

    // One that ignores `_id`: the Patient search lists everyone; the app
    // would not load.
    let (_p, base) = provider_with(&["--fhir-version", "dstu2", "--ignore", "_id"]);
    let (code, report) = check_provider(&base, "dstu2");
    assert_eq!(code, 2, "{report}");
    assert_eq!(calls_judged(&report, "parameter-ignored"), vec!["Patient stu3", "Patient dstu2"], "{report}");
}

/// The name parts of an R4 demo patient (`family`, `given`, or `any`).
fn name_parts(p: &Value, part: &str) -> Vec<String> {
    let keys: &[&str] = match part {
        "family" => &["family"],
        "given" => &["given"],
        _ => &["family", "given", "prefix", "suffix", "text"],
    };
    let mut out = Vec::new();
    for n in p["name"].as_array().into_iter().flatten() {
        for k in keys {
            match &n[*k] {
                Value::String(s) => out.push(s.to_lowercase()),
                Value::Array(a) => out.extend(a.iter().filter_map(Value::as_str).map(str::to_lowercase)),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_patient_search_parameter_finds_exactly_the_expected_patients() {
    use std::collections::BTreeSet;
    let data = fhirgate_devtools::demo::data::patients();
    let ids = |f: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        data.iter().filter(|p| f(p)).map(|p| p["id"].as_str().unwrap().to_owned()).collect()
    };
    let contains =
        |part: &'static str, s: &'static str| move |p: &Value| name_parts(p, part).iter().any(|n| n.contains(s));
    let mrn10 = fhirgate_devtools::demo::data::mrn(10);
    // (face, form body, expected ids), per interfaces.md's search params of each face.
    let cases: Vec<(&str, String, BTreeSet<String>)> = vec![
        ("stu3", "_id=pat-005".into(), BTreeSet::from(["pat-005".to_owned()])),
        ("dstu2", "_id=pat-005".into(), BTreeSet::from(["pat-005".to_owned()])),
        ("stu3", "family=ha".into(), ids(&contains("family", "ha"))),
        ("dstu2", "family:contains=ha".into(), ids(&contains("family", "ha"))),
        ("stu3", "given=an".into(), ids(&contains("given", "an"))),
        ("dstu2", "given=an".into(), ids(&contains("given", "an"))),
        ("dstu2", "name=ar".into(), ids(&contains("any", "ar"))),
        ("stu3", "birthdate=1970-01-01".into(), ids(&|p: &Value| p["birthDate"] == "1970-01-01")),
        ("dstu2", "birthdate=1970-01-01".into(), ids(&|p: &Value| p["birthDate"] == "1970-01-01")),
        ("stu3", "gender=female".into(), ids(&|p: &Value| p["gender"] == "female")),
        ("stu3", format!("identifier={mrn10}"), BTreeSet::from(["pat-011".to_owned()])),
        ("dstu2", format!("identifier={mrn10}"), BTreeSet::from(["pat-011".to_owned()])),
        ("stu3", "given=hugh&family=chau".into(), BTreeSet::from(["pat-001".to_owned()])),
    ];
    let (_r4, r4) = provider_with(&["--fhir-version", "r4"]);
    let (_stu3, stu3) = provider_with(&["--fhir-version", "stu3"]);
    let (_dstu2, dstu2) = provider_with(&["--fhir-version", "dstu2"]);
    let gw = Setup {
        tenants: &[(T_R4, "hospital-r4"), (T_STU3, "hospital-stu3"), (T_DSTU2, "hospital-dstu2")],
        providers: &[("hospital-r4", &r4), ("hospital-stu3", &stu3), ("hospital-dstu2", &dstu2)],
        versions: &[("hospital-r4", "r4"), ("hospital-stu3", "stu3"), ("hospital-dstu2", "dstu2")],
        client_tenants: &[T_R4, T_STU3, T_DSTU2],
        ..Default::default()
    }
    .serve();
    for (tenant, dialect) in [(T_R4, "r4"), (T_STU3, "stu3"), (T_DSTU2, "dstu2")] {
        let token = gw.token(tenant);
        for (face, form, expected) in &cases {
            assert!(!expected.is_empty(), "{form}: the oracle expects someone");
            let resp = http()
                .post(format!("{}/{face}/Patient/_search", gw.base))
                .bearer_auth(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("{form}&_count=100"))
                .send()
                .unwrap();
            assert_eq!(resp.status(), 200, "{form} on {face} from {dialect}");
            let bundle: Value = resp.json().unwrap();
            let found: BTreeSet<String> =
                entries(&bundle).iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
            assert_eq!(&found, expected, "{form} on {face} from {dialect}");
            assert_eq!(bundle["total"].as_u64().unwrap() as usize, expected.len(), "{form}: total");
        }
        // `_count` limits the page; `total` still counts every match.
        let bundle: Value = http()
            .get(format!("{}/stu3/Patient?_count=3", gw.base))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(entries(&bundle).len(), 3);
        assert_eq!(bundle["total"].as_u64().unwrap() as usize, data.len());
    }
}

/// A field the app reads (interfaces.md): whether it is required, where it
/// is on a face, and where its data is in a provider's own dialect.
struct Field {
    name: &'static str,
    required: bool,
    on_face: Check,
    in_source: Check,
}

/// A test of a resource in a FHIR version (`stu3`/`dstu2` for a face,
/// `r4`/`stu3`/`dstu2` for a provider's dialect).
#[derive(Clone, Copy)]
enum Check {
    /// A value at one pointer in DSTU2 and another in STU3 and R4.
    At {
        dstu2: &'static str,
        other: &'static str,
    },
    Fn(fn(&str, &Value) -> bool),
}

impl Check {
    fn holds(self, version: &str, v: &Value) -> bool {
        match self {
            Check::At { dstu2, other } => at(v, if version == "dstu2" { dstu2 } else { other }),
            Check::Fn(f) => f(version, v),
        }
    }
}

/// A field at `dstu2` in DSTU2 and at `other` in STU3 and R4, on the face
/// and in the provider's resource alike.
fn field(name: &'static str, required: bool, dstu2: &'static str, other: &'static str) -> Field {
    let check = Check::At { dstu2, other };
    Field { name, required, on_face: check, in_source: check }
}

/// Whether `v` has a non-empty value at `ptr`.
fn at(v: &Value, ptr: &str) -> bool {
    match v.pointer(ptr) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Whether any element of the list at `list` has a value at `ptr`.
fn any_at(v: &Value, list: &str, ptr: &str) -> bool {
    v.pointer(list).and_then(Value::as_array).is_some_and(|items| items.iter().any(|i| at(i, ptr)))
}

fn has_mrn(r: &Value) -> bool {
    r["identifier"].as_array().is_some_and(|ids| {
        ids.iter().any(|i| i["type"]["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "MR")))
    })
}

/// The fields the app reads of a resource of type `rt` (its STU3 name).
fn fields(rt: &str) -> Vec<Field> {
    macro_rules! f {
        // One check for the face and the provider's resource alike.
        ($name:literal, $required:literal, |$version:ident, $v:ident| $both:expr) => {{
            let check = Check::Fn(|$version: &str, $v: &Value| {
                let _ = $version;
                $both
            });
            Field { name: $name, required: $required, on_face: check, in_source: check }
        }};
        ($name:literal, $required:literal, |$face:ident, $r:ident| $on_face:expr, |$dialect:ident, $s:ident| $in_source:expr) => {
            Field {
                name: $name,
                required: $required,
                on_face: Check::Fn(|$face: &str, $r: &Value| {
                    let _ = $face;
                    $on_face
                }),
                in_source: Check::Fn(|$dialect: &str, $s: &Value| {
                    let _ = $dialect;
                    $in_source
                }),
            }
        };
    }
    match rt {
        "Patient" => vec![
            f!(
                "name.family",
                true,
                |face, r| if face == "dstu2" { at(r, "/name/0/family/0") } else { r["name"][0]["family"].is_string() },
                |d, s| at(s, "/name/0/family")
            ),
            field("name.given", true, "/name/0/given/0", "/name/0/given/0"),
            field("gender", true, "/gender", "/gender"),
            field("birthDate", true, "/birthDate", "/birthDate"),
            f!("identifier (MRN)", true, |version, v| has_mrn(v)),
            field("name.use", false, "/name/0/use", "/name/0/use"),
            field("name.prefix", false, "/name/0/prefix/0", "/name/0/prefix/0"),
            f!("careProvider / generalPractitioner display", false, |version, v| at(
                v,
                if version == "dstu2" { "/careProvider/0/display" } else { "/generalPractitioner/0/display" }
            )),
        ],
        "Observation" => vec![
            f!("effective[x]", true, |version, v| at(v, "/effectiveDateTime") || at(v, "/effectivePeriod")),
            field("code.coding.code", true, "/code/coding/0/code", "/code/coding/0/code"),
            f!("valueQuantity.value", true, |version, v| at(v, "/valueQuantity/value")
                || any_at(v, "/component", "/valueQuantity/value")),
            f!(
                "category",
                true,
                |face, r| if face == "dstu2" {
                    at(r, "/category/coding/0/code")
                } else {
                    r["category"][0]["coding"][0]["system"] == "http://hl7.org/fhir/observation-category"
                },
                |d, s| at(s, "/category")
            ),
            field("code.coding.display", false, "/code/coding/0/display", "/code/coding/0/display"),
            f!("valueQuantity.unit", false, |version, v| at(v, "/valueQuantity/unit")
                || any_at(v, "/component", "/valueQuantity/unit")),
            f!(
                "component code and value",
                false,
                |face, r| r["component"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|c| at(c, "/code/coding/0/code") && at(c, "/valueQuantity/value"))),
                |d, s| any_at(s, "/component", "/valueQuantity/value")
            ),
        ],
        "Condition" => vec![
            field("code.coding[0].display", true, "/code/coding/0/display", "/code/coding/0/display"),
            f!(
                "dateRecorded / assertedDate",
                false,
                |face, r| at(r, if face == "dstu2" { "/dateRecorded" } else { "/assertedDate" }),
                |d, s| at(
                    s,
                    match d {
                        "dstu2" => "/dateRecorded",
                        "stu3" => "/assertedDate",
                        _ => "/recordedDate",
                    }
                )
            ),
            field("severity", false, "/severity", "/severity"),
        ],
        "Encounter" => {
            vec![
                field("status", true, "/status", "/status"),
                field("type[0].coding[0].display", true, "/type/0/coding/0/display", "/type/0/coding/0/display"),
                f!(
                    "patient / subject",
                    true,
                    |face, r| if face == "dstu2" { at(r, "/patient") && !at(r, "/subject") } else { at(r, "/subject") },
                    |d, s| at(s, if d == "dstu2" { "/patient" } else { "/subject" })
                ),
                field("period.start", false, "/period/start", "/period/start"),
                f!("location[0].location.display", false, |face, r| at(r, "/location/0/location/display"), |d, s| at(
                    s,
                    "/location/0/location/reference"
                )
                    || at(s, "/location/0/location/display")),
            ]
        }
        "AllergyIntolerance" => vec![
            field("substance / code text", true, "/substance/text", "/code/text"),
            field(
                "substance / code first coding's display",
                true,
                "/substance/coding/0/display",
                "/code/coding/0/display",
            ),
            f!(
                "status / clinicalStatus",
                true,
                |face, r| at(r, if face == "dstu2" { "/status" } else { "/clinicalStatus" }),
                |d, s| if d == "dstu2" {
                    matches!(
                        s["status"].as_str(),
                        Some("active" | "inactive" | "resolved" | "confirmed" | "unconfirmed")
                    )
                } else {
                    at(s, "/clinicalStatus")
                }
            ),
            field("status / verificationStatus", true, "/status", "/verificationStatus"),
            f!(
                "recordedDate / assertedDate",
                false,
                |face, r| at(r, if face == "dstu2" { "/recordedDate" } else { "/assertedDate" }),
                |d, s| at(s, if d == "stu3" { "/assertedDate" } else { "/recordedDate" })
            ),
            f!("note.text", false, |version, v| at(v, "/note/text") || at(v, "/note/0/text")),
            f!("reaction substance", false, |version, v| if version == "dstu2" {
                any_at(v, "/reaction", "/substance/text")
            } else {
                any_at(v, "/reaction", "/substance/coding/0")
            }),
            f!("reaction manifestation", false, |version, v| if version == "dstu2" {
                any_at(v, "/reaction", "/manifestation/0/text")
            } else {
                any_at(v, "/reaction", "/manifestation/0/coding/0")
            }),
        ],
        "MedicationRequest" => vec![
            field("dateWritten / authoredOn", true, "/dateWritten", "/authoredOn"),
            f!(
                "prescriber / requester display",
                true,
                |face, r| at(r, if face == "dstu2" { "/prescriber/display" } else { "/requester/agent/display" }),
                |d, s| at(
                    s,
                    match d {
                        "dstu2" => "/prescriber/display",
                        "stu3" => "/requester/agent/display",
                        _ => "/requester/display",
                    }
                )
            ),
            f!("medication display or text", true, |version, v| at(v, "/medicationReference/display")
                || at(v, "/medicationCodeableConcept/text")),
            f!("dateEnded", false, |face, r| face != "dstu2" || at(r, "/dateEnded"), |d, s| at(s, "/dateEnded")),
            field("dosageInstruction.text", false, "/dosageInstruction/0/text", "/dosageInstruction/0/text"),
            field("text.div", false, "/text/div", "/text/div"),
        ],
        "Coverage" => vec![
            f!(
                "plan / grouping.planDisplay",
                true,
                |face, r| at(r, if face == "dstu2" { "/plan" } else { "/grouping/planDisplay" }),
                |d, s| match d {
                    "dstu2" => at(s, "/plan"),
                    "stu3" => at(s, "/grouping/planDisplay"),
                    _ => s["class"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"]["coding"][0]["code"] == "plan" && at(c, "/name"))),
                }
            ),
            f!("grouping.groupDisplay", true, |face, r| face == "dstu2" || at(r, "/grouping/groupDisplay"), |d, s| {
                match d {
                    "dstu2" => at(s, "/group"),
                    "stu3" => at(s, "/grouping/groupDisplay"),
                    _ => s["class"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"]["coding"][0]["code"] == "group" && at(c, "/name"))),
                }
            }),
            field("issuer / payor", true, "/issuer", "/payor/0"),
            field("period", true, "/period", "/period"),
            field("subscriberId", true, "/subscriberId", "/subscriberId"),
        ],
        "Location" => vec![field("name", true, "/name", "/name")],
        other => panic!("no fields listed for {other}"),
    }
}

#[test]
fn every_field_the_app_reads_is_carried_whenever_the_provider_has_it() {
    // Twelve consecutive patients: every variant of the demo data (second
    // names, no prefix, no telephone, no practitioner; Coverage without a
    // period, Encounters without Location displays, medications by
    // reference or by code, …) from each dialect, on both faces.
    let patients: Vec<String> = (0..12).map(fhirgate_devtools::demo::data::patient_id).collect();
    let (_r4, r4) = provider_with(&["--fhir-version", "r4"]);
    let (_stu3, stu3) = provider_with(&["--fhir-version", "stu3"]);
    let (_dstu2, dstu2) = provider_with(&["--fhir-version", "dstu2"]);
    let gw = Setup {
        tenants: &[(T_R4, "hospital-r4"), (T_STU3, "hospital-stu3"), (T_DSTU2, "hospital-dstu2")],
        providers: &[("hospital-r4", &r4), ("hospital-stu3", &stu3), ("hospital-dstu2", &dstu2)],
        versions: &[("hospital-r4", "r4"), ("hospital-stu3", "stu3"), ("hospital-dstu2", "dstu2")],
        client_tenants: &[T_R4, T_STU3, T_DSTU2],
        ..Default::default()
    }
    .serve();
    // (face, field) → times the provider had the data.
    let mut exercised: std::collections::BTreeMap<(String, String), usize> = Default::default();
    let mut missing: Vec<String> = Vec::new();
    let mut received: Vec<(&str, String, Value)> = Vec::new();
    for (tenant, dialect, provider) in [(T_R4, "r4", &r4), (T_STU3, "stu3", &stu3), (T_DSTU2, "dstu2", &dstu2)] {
        let token = gw.token(tenant);
        for patient in &patients {
            for (rt, face_rt_dstu2, dialect_rt) in [
                ("Patient", "Patient", "Patient"),
                ("Observation", "Observation", "Observation"),
                ("Condition", "Condition", "Condition"),
                ("Encounter", "Encounter", "Encounter"),
                ("AllergyIntolerance", "AllergyIntolerance", "AllergyIntolerance"),
                (
                    "MedicationRequest",
                    "MedicationOrder",
                    if dialect == "dstu2" { "MedicationOrder" } else { "MedicationRequest" },
                ),
                ("Coverage", "Coverage", "Coverage"),
            ] {
                // The provider's own answer, in its dialect: the data it has.
                let direct_url = match (rt, dialect) {
                    ("Patient", _) => format!("{provider}/Patient?_id={patient}"),
                    ("Coverage", "stu3") => format!("{provider}/Coverage?beneficiary={patient}&_count=100"),
                    _ => format!("{provider}/{dialect_rt}?patient={patient}&_count=100"),
                };
                let direct: Value = http().get(&direct_url).send().unwrap().json().unwrap();
                let sources = entries(&direct);
                for face in ["stu3", "dstu2"] {
                    let face_rt = if face == "dstu2" { face_rt_dstu2 } else { rt };
                    let query = if rt == "Patient" {
                        format!("Patient?_id={patient}")
                    } else {
                        format!("{face_rt}?patient={patient}&_count=100")
                    };
                    let what = format!("{query} ({dialect} provider → {face})");
                    let resp = http().get(format!("{}/{face}/{query}", gw.base)).bearer_auth(&token).send().unwrap();
                    assert_eq!(resp.status(), 200, "{what}");
                    let body: Value = resp.json().unwrap();
                    let shaped = entries(&body);
                    assert_eq!(shaped.len(), sources.len(), "{what}: every resource the provider has");
                    for source in &sources {
                        let id = source["id"].as_str().unwrap();
                        let Some(r) = shaped.iter().find(|r| r["id"] == id) else { panic!("{what}: {id} is missing") };
                        for field in fields(rt) {
                            if !field.in_source.holds(dialect, source) {
                                continue;
                            }
                            *exercised.entry((face.to_owned(), format!("{rt}.{}", field.name))).or_default() += 1;
                            if !field.on_face.holds(face, r) {
                                let kind = if field.required { "required" } else { "also read" };
                                missing.push(format!("{what}: {id} lost {kind} `{}`: {r}", field.name));
                            }
                        }
                    }
                    received.push((face, what, body));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{} fields lost:\n{}", missing.len(), missing.join("\n"));
    // Every field was put to the test on both faces: the data has them all.
    for face in ["stu3", "dstu2"] {
        for rt in
            ["Patient", "Observation", "Condition", "Encounter", "AllergyIntolerance", "MedicationRequest", "Coverage"]
        {
            for field in fields(rt) {
                let key = (face.to_owned(), format!("{rt}.{}", field.name));
                assert!(exercised.get(&key).is_some_and(|n| *n > 0), "{key:?}: no provider data had this field");
            }
        }
    }
    for face in ["stu3", "dstu2"] {
        let bodies: Vec<(String, Value)> = received
            .iter()
            .filter(|(f, _, _)| *f == face)
            .map(|(_, what, body)| (what.clone(), body.clone()))
            .collect();
        validate_fhir_all(face, &bodies);
    }
}
