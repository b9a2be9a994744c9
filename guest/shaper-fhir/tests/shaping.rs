//! The shaper against realistic fixtures (`tests/fixtures/{r4,stu3,dstu2}`):
//! every resource the app reads, shaped from each provider version to both
//! faces, with the fields interfaces.md requires asserted on each face and
//! every shaped answer checked by an independent FHIR validator; and every
//! search of interfaces.md shaped for each provider version.

use std::path::{Path, PathBuf};
use std::process::Command;

use fhirgate_guest_sdk::types::{FhirVersion, Interaction, Param};
use fhirgate_shaper_fhir::request;
use fhirgate_shaper_fhir::response::{self, missing_location_displays};
use fhirgate_shaper_fhir::wit::{Exchange, UpstreamRequest};
use serde_json::{Value, json};

use FhirVersion::{Dstu2, R4, Stu3};

const FACES: [FhirVersion; 2] = [Stu3, Dstu2];
const PROVIDERS: [FhirVersion; 3] = [R4, Stu3, Dstu2];

fn folder(v: FhirVersion) -> &'static str {
    match v {
        R4 => "r4",
        Stu3 => "stu3",
        Dstu2 => "dstu2",
    }
}

fn gateway_base(face: FhirVersion) -> String {
    format!("https://gw.example/{}", folder(face))
}

/// The bases the fixtures' providers use in their links and references.
fn provider_base(v: FhirVersion) -> &'static str {
    match v {
        R4 => "https://ehr.example/fhir/r4",
        Stu3 => "https://ehr.example/fhir/stu3",
        Dstu2 => "https://legacy.example/fhir/dstu2",
    }
}

fn exchange(face: FhirVersion, provider: FhirVersion, interaction: Interaction) -> Exchange {
    Exchange {
        client_version: face,
        upstream_version: provider,
        interaction,
        gateway_base: gateway_base(face),
        upstream_base: provider_base(provider).into(),
    }
}

struct Fixture {
    version: FhirVersion,
    name: String,
    json: Value,
}

fn fixtures() -> Vec<Fixture> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for version in PROVIDERS {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(folder(version)))
            .expect("fixture folder")
            .map(|e| e.expect("fixture entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("fixture");
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push(Fixture { version, name, json });
        }
    }
    assert!(out.len() >= 39, "fixtures are missing: {}", out.len());
    out
}

fn shape(f: &Fixture, face: FhirVersion) -> Value {
    let ex = exchange(face, f.version, Interaction::Read);
    let body = serde_json::to_vec(&f.json).unwrap();
    let shaped = response::shape(&ex, 200, &body)
        .unwrap_or_else(|d| panic!("{} {} → {}: {} {}", folder(f.version), f.name, folder(face), d.status, d.message));
    assert_eq!(shaped.status, 200);
    serde_json::from_slice(&shaped.body).expect("shaped JSON")
}

/// A string at a JSON pointer, which must be there and not be empty.
fn text<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a str {
    match v.pointer(pointer).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s,
        _ => panic!("{what}: `{pointer}` is missing in {v:#}"),
    }
}

fn has(v: &Value, pointer: &str, what: &str) {
    assert!(v.pointer(pointer).is_some_and(|x| !x.is_null()), "{what}: `{pointer}` is missing in {v:#}");
}

fn lacks(v: &Value, pointer: &str, what: &str) {
    assert!(v.pointer(pointer).is_none(), "{what}: `{pointer}` must not be there in {v:#}");
}

/// Checks the fields interfaces.md requires of `res` on the `face`, and that
/// nothing of another version is left.
fn check(face: FhirVersion, source: FhirVersion, res: &Value, unresolved: &[String], what: &str) {
    let rt = text(res, "/resourceType", what);
    let what = &format!("{what} ({rt})");
    if let Some(meta) = res.get("meta") {
        lacks(meta, "/source", what);
        if source != face {
            // Profiles are claims about the provider's release.
            lacks(meta, "/profile", what);
        }
    }
    match (rt, face) {
        ("Bundle", _) => {
            lacks(res, "/timestamp", what);
            if face == Dstu2 {
                lacks(res, "/identifier", what);
            }
            for link in res["link"].as_array().into_iter().flatten() {
                assert!(text(link, "/url", what).starts_with(&gateway_base(face)), "{what}: {link}");
            }
            for entry in res["entry"].as_array().into_iter().flatten() {
                if let Some(url) = entry.get("fullUrl") {
                    assert!(url.as_str().unwrap().starts_with(&gateway_base(face)), "{what}: {url}");
                }
                if face == Dstu2 {
                    lacks(entry, "/response/outcome", what);
                } else if let Some(outcome) = entry.pointer("/response/outcome") {
                    check(face, source, outcome, unresolved, what);
                }
                check(face, source, &entry["resource"], unresolved, what);
            }
        }
        ("Patient", _) => {
            match face {
                Stu3 => {
                    text(res, "/name/0/family", what);
                    text(res, "/generalPractitioner/0/display", what);
                }
                _ => {
                    text(res, "/name/0/family/0", what);
                    text(res, "/careProvider/0/display", what);
                    lacks(res, "/generalPractitioner", what);
                }
            }
            text(res, "/name/0/given/0", what);
            text(res, "/name/0/use", what);
            text(res, "/gender", what);
            text(res, "/birthDate", what);
            let mrn = res["identifier"].as_array().into_iter().flatten().any(|id| {
                id.pointer("/type/coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| c["system"] == "http://hl7.org/fhir/v2/0203" && c["code"] == "MR")
                    && id.get("value").is_some()
            });
            assert!(mrn, "{what}: no MRN identifier with a v2-0203 `MR` type: {res:#}");
        }
        ("Observation", _) => {
            assert!(res.get("effectiveDateTime").is_some() || res.get("effectivePeriod").is_some(), "{what}");
            text(res, "/code/coding/0/code", what);
            text(res, "/code/coding/0/display", what);
            match res.get("component").and_then(Value::as_array) {
                Some(components) => {
                    for c in components {
                        text(c, "/code/coding/0/code", what);
                        has(c, "/valueQuantity/value", what);
                        text(c, "/valueQuantity/unit", what);
                    }
                }
                None => {
                    has(res, "/valueQuantity/value", what);
                    text(res, "/valueQuantity/unit", what);
                }
            }
            let category = if face == Stu3 { &res["category"][0] } else { &res["category"] };
            assert!(face == Dstu2 || res["category"].is_array(), "{what}: category must be a list");
            assert_eq!(category["coding"][0]["system"], "http://hl7.org/fhir/observation-category", "{what}");
            assert_eq!(category["coding"][0]["code"], "vital-signs", "{what}");
        }
        ("Condition", Stu3) => {
            text(res, "/code/coding/0/display", what);
            text(res, "/assertedDate", what);
            text(res, "/subject/reference", what);
            text(res, "/clinicalStatus", what);
        }
        ("Condition", _) => {
            text(res, "/code/coding/0/display", what);
            assert_eq!(text(res, "/dateRecorded", what).len(), 10, "{what}: dateRecorded is a date");
            text(res, "/patient/reference", what);
            text(res, "/verificationStatus", what);
            lacks(res, "/subject", what);
        }
        ("Encounter", _) => {
            text(res, "/status", what);
            text(res, "/type/0/coding/0/display", what);
            text(res, "/period/start", what);
            let reference = text(res, "/location/0/location/reference", what);
            if !unresolved.iter().any(|u| u == reference) {
                text(res, "/location/0/location/display", what);
            }
            if face == Stu3 {
                text(res, "/subject/reference", what);
                text(res, "/class/code", what);
            } else {
                text(res, "/patient/reference", what);
                text(res, "/class", what);
                lacks(res, "/subject", what);
            }
        }
        ("Location", _) => {
            text(res, "/name", what);
        }
        ("AllergyIntolerance", Stu3) => {
            text(res, "/code/text", what);
            text(res, "/code/coding/0/display", what);
            text(res, "/clinicalStatus", what);
            text(res, "/verificationStatus", what);
            text(res, "/assertedDate", what);
            text(res, "/note/0/text", what);
            text(res, "/reaction/0/manifestation/0/coding/0/display", what);
        }
        ("AllergyIntolerance", _) => {
            text(res, "/substance/text", what);
            text(res, "/substance/coding/0/display", what);
            text(res, "/status", what);
            text(res, "/recordedDate", what);
            text(res, "/note/text", what);
            text(res, "/text/div", what);
            lacks(res, "/code", what);
        }
        ("MedicationRequest", Stu3) => {
            text(res, "/authoredOn", what);
            text(res, "/requester/agent/display", what);
            medication_name(res, what);
            text(res, "/intent", what);
            text(res, "/subject/reference", what);
            text(res, "/dosageInstruction/0/text", what);
        }
        ("MedicationOrder", Dstu2) => {
            text(res, "/dateWritten", what);
            text(res, "/prescriber/display", what);
            medication_name(res, what);
            text(res, "/patient/reference", what);
            text(res, "/dosageInstruction/0/text", what);
            text(res, "/text/div", what);
        }
        ("MedicationStatement", Stu3) => {
            medication_name(res, what);
            text(res, "/subject/reference", what);
            text(res, "/taken", what);
        }
        ("MedicationStatement", _) => {
            medication_name(res, what);
            text(res, "/patient/reference", what);
        }
        ("Coverage", Stu3) => {
            text(res, "/grouping/groupDisplay", what);
            text(res, "/grouping/planDisplay", what);
            text(res, "/period/start", what);
            text(res, "/subscriberId", what);
            text(res, "/payor/0/display", what);
        }
        ("Coverage", _) => {
            text(res, "/plan", what);
            text(res, "/issuer/display", what);
            text(res, "/subscriberId/value", what);
        }
        ("OperationOutcome", _) => {
            text(res, "/issue/0/severity", what);
            text(res, "/issue/0/code", what);
            if face == Dstu2 {
                lacks(res, "/issue/0/expression", what);
            }
        }
        (other, face) => panic!("{what}: `{other}` is not a resource the {face:?} face serves"),
    }
}

fn medication_name(res: &Value, what: &str) {
    let name = res.pointer("/medicationReference/display").or_else(|| res.pointer("/medicationCodeableConcept/text"));
    assert!(name.and_then(Value::as_str).is_some_and(|s| !s.is_empty()), "{what}: no medication name: {res:#}");
}

#[test]
fn every_fixture_shapes_to_both_faces_with_the_required_fields() {
    for f in fixtures() {
        for face in FACES {
            let out = shape(&f, face);
            let what = format!("{} {} → {}", folder(f.version), f.name, folder(face));
            let unresolved = missing_location_displays(out.as_object().unwrap());
            check(face, f.version, &out, &unresolved, &what);
            let text = out.to_string();
            assert!(!text.contains(provider_base(f.version)), "{what}: the provider's URL leaked: {text}");
        }
    }
}

#[test]
fn shaping_keeps_the_providers_values() {
    for f in fixtures() {
        for face in FACES {
            let out = shape(&f, face);
            let what = format!("{} {} → {}", folder(f.version), f.name, folder(face));
            for pointer in ["/id", "/birthDate", "/gender", "/status", "/code/coding/0/code", "/valueQuantity/value"] {
                let (Some(before), Some(after)) = (f.json.pointer(pointer), out.pointer(pointer)) else { continue };
                // Statuses are recoded between releases; the rest is copied.
                if pointer == "/status" && before != after {
                    continue;
                }
                assert_eq!(before, after, "{what}: {pointer}");
            }
        }
    }
}

#[test]
fn searchset_fills_location_displays_and_lists_the_rest() {
    let f = fixtures().into_iter().find(|f| f.version == R4 && f.name == "Bundle-searchset").unwrap();
    for face in FACES {
        let out = shape(&f, face);
        let entries = out["entry"].as_array().unwrap();
        // The Practitioner the provider included has no place on the faces;
        // the Location does.
        let types: Vec<&str> = entries.iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
        assert_eq!(types, ["Encounter", "Encounter", "Location", "OperationOutcome"], "{face:?}");
        assert_eq!(
            entries[0]["resource"]["location"][0]["location"]["display"], "Ward 3B",
            "from the included Location"
        );
        assert_eq!(entries[1]["resource"]["location"][0]["location"], json!({"reference": "Location/loc-9"}));
        assert_eq!(missing_location_displays(out.as_object().unwrap()), ["Location/loc-9"]);
        assert_eq!(out["total"], 12);
        assert_eq!(out["entry"][0]["fullUrl"], format!("{}/Encounter/enc-002", gateway_base(face)));
        assert_eq!(
            out["link"][1]["url"],
            format!("{}/Encounter?patient=pat-001&_sort=-date&_count=2&_offset=2", gateway_base(face))
        );
    }
    // A contained Location names the reference on its own.
    let f = fixtures().into_iter().find(|f| f.version == Stu3 && f.name == "Encounter").unwrap();
    for face in FACES {
        let out = shape(&f, face);
        assert_eq!(out["location"][0]["location"]["display"], "ER Bay 2");
        assert!(missing_location_displays(out.as_object().unwrap()).is_empty());
    }
}

#[test]
fn batch_responses_are_shaped_entry_by_entry() {
    let f = fixtures().into_iter().find(|f| f.version == R4 && f.name == "Bundle-batch-response").unwrap();
    let out = shape(&f, Dstu2);
    assert_eq!(out["type"], "batch-response");
    assert_eq!(out["entry"][0]["resource"]["name"][0]["family"], json!(["Chau"]));
    assert_eq!(out["entry"][2]["resource"]["resourceType"], "MedicationOrder");
    assert_eq!(out["entry"][2]["fullUrl"], "https://gw.example/dstu2/MedicationOrder/medrx-001");
    assert_eq!(
        out["entry"][2]["response"]["location"],
        "https://gw.example/dstu2/MedicationOrder/medrx-001/_history/2"
    );
    assert!(out["entry"][1]["response"].get("outcome").is_none());
    let out = shape(&f, Stu3);
    assert_eq!(out["entry"][1]["response"]["outcome"]["issue"][0]["expression"][0], "Patient.id");
    assert_eq!(out["entry"][2]["resource"]["requester"]["agent"]["display"], "Dr. Ada Lovelace");
}

#[test]
fn a_type_outside_the_interfaces_is_refused_across_versions() {
    let practitioner = br#"{"resourceType":"Practitioner","id":"p","name":[{"family":"Lovelace"}]}"#;
    let d = response::shape(&exchange(Stu3, R4, Interaction::Read), 200, practitioner).unwrap_err();
    assert_eq!(d.status, 501);
    let same = response::shape(&exchange(Stu3, Stu3, Interaction::Read), 200, practitioner).unwrap();
    assert_eq!(same.status, 200);
}

// ---- Validity --------------------------------------------------------------

/// The Python interpreter that has `fhir.resources` 7.1.0: `$FHIRGATE_PYTHON`,
/// the test virtualenv the README's test command creates in the target
/// directory, or `/tmp/fr7`.
fn python() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    [
        std::env::var_os("FHIRGATE_PYTHON").map(PathBuf::from),
        Some(target.join("py/bin/python")),
        Some("/tmp/fr7/bin/python".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())
}

#[test]
fn shaped_answers_are_valid_fhir() {
    let Some(python) = python() else {
        println!("note: no Python with fhir.resources (set FHIRGATE_PYTHON); shaped answers were not validated");
        return;
    };
    let dir = std::env::temp_dir().join(format!("fhirgate-shaper-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut written = 0;
    for f in fixtures() {
        // The fixtures themselves are valid in their own version…
        write(&dir, f.version, &format!("source-{}", f.name), &f.json);
        // …and so is every shaped answer, on both faces.
        for face in FACES {
            write(&dir, face, &format!("{}-{}", folder(f.version), f.name), &shape(&f, face));
            written += 1;
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/validate_fhir.py");
    let mut valid = 0;
    for version in PROVIDERS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(folder(version)))
            .expect("written answers")
            .map(|e| e.expect("written answer").path())
            .collect();
        files.sort();
        let out = Command::new(&python)
            .arg(&script)
            .args(["--version", folder(version)])
            .args(&files)
            .output()
            .expect("running the FHIR validator");
        let report = String::from_utf8_lossy(&out.stdout);
        println!("{report}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "{} answers are not valid FHIR (see above); files in {}",
            folder(version),
            dir.display()
        );
        valid += report.lines().filter(|l| l.contains(": valid ")).count();
    }
    println!("{valid} resources valid, {written} of them shaped answers");
    assert!(valid > written, "the validator checked too few files");
    let _ = std::fs::remove_dir_all(&dir);
}

fn write(dir: &Path, version: FhirVersion, name: &str, json: &Value) {
    let folder = dir.join(folder(version));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{name}.json")), serde_json::to_vec_pretty(json).unwrap()).unwrap();
}

// ---- Request shaping -------------------------------------------------------

/// Query parameters, in order.
type Params = &'static [(&'static str, &'static str)];

/// The path and parameters a provider receives.
type Upstream = (&'static str, Vec<(&'static str, String)>);

/// One search of interfaces.md as the app sends it on a face, and what the
/// provider of each version must receive.
struct Search {
    /// The faces that send it.
    faces: &'static [FhirVersion],
    path: &'static str,
    params: Params,
    expect: fn(FhirVersion) -> Upstream,
}

fn upstream_sort(provider: FhirVersion) -> (&'static str, String) {
    match provider {
        Dstu2 => ("_sort:desc", "date".into()),
        _ => ("_sort", "-date".into()),
    }
}

fn medication_type(provider: FhirVersion) -> &'static str {
    if provider == Dstu2 { "MedicationOrder" } else { "MedicationRequest" }
}

const SEARCHES: &[Search] = &[
    Search {
        faces: &[Dstu2],
        path: "Patient",
        params: &[
            ("family:contains", "cha"),
            ("given", "hu"),
            ("name", "chau"),
            ("birthdate", "1970-01-01"),
            ("identifier", "MRN100001"),
            ("_count", "5"),
        ],
        expect: |_| {
            (
                "Patient",
                vec![
                    ("family:contains", "cha".into()),
                    ("given:contains", "hu".into()),
                    ("name:contains", "chau".into()),
                    ("birthdate", "1970-01-01".into()),
                    ("identifier", "MRN100001".into()),
                    ("_count", "5".into()),
                ],
            )
        },
    },
    Search {
        faces: &[Dstu2],
        path: "Patient",
        params: &[("_id", "pat-001"), ("id", "pat-002")],
        expect: |_| ("Patient", vec![("_id", "pat-001".into()), ("_id", "pat-002".into())]),
    },
    Search {
        faces: &[Stu3],
        path: "Patient",
        params: &[
            ("family", "chau"),
            ("given", "hugh"),
            ("birthdate", "1970-01-01"),
            ("gender", "male"),
            ("identifier", "MRN100001"),
            ("_id", "pat-001"),
            ("_count", "3"),
        ],
        expect: |_| {
            (
                "Patient",
                vec![
                    ("family:contains", "chau".into()),
                    ("given:contains", "hugh".into()),
                    ("birthdate", "1970-01-01".into()),
                    ("gender", "male".into()),
                    ("identifier", "MRN100001".into()),
                    ("_id", "pat-001".into()),
                    ("_count", "3".into()),
                ],
            )
        },
    },
    Search {
        faces: &[Dstu2],
        path: "Observation",
        params: &[("patient", "pat-001"), ("_sort:desc", "date"), ("category", "vital-signs")],
        expect: |p| {
            ("Observation", vec![("patient", "pat-001".into()), upstream_sort(p), ("category", "vital-signs".into())])
        },
    },
    Search {
        faces: &[Stu3],
        path: "Observation",
        params: &[("patient", "pat-001"), ("_sort", "-date"), ("category", "vital-signs")],
        expect: |p| {
            ("Observation", vec![("patient", "pat-001".into()), upstream_sort(p), ("category", "vital-signs".into())])
        },
    },
    Search {
        faces: &[Dstu2, Stu3],
        path: "Condition",
        params: &[("patient", "pat-001"), ("_count", "20")],
        expect: |_| ("Condition", vec![("patient", "pat-001".into()), ("_count", "20".into())]),
    },
    Search {
        faces: &[Dstu2, Stu3],
        path: "Encounter",
        params: &[("patient", "pat-001"), ("_sort:desc", "date"), ("_count", "1")],
        expect: |p| ("Encounter", vec![("patient", "pat-001".into()), upstream_sort(p), ("_count", "1".into())]),
    },
    Search {
        faces: &[Dstu2, Stu3],
        path: "AllergyIntolerance",
        params: &[("patient", "pat-001")],
        expect: |_| ("AllergyIntolerance", vec![("patient", "pat-001".into())]),
    },
    Search {
        faces: &[Dstu2],
        path: "MedicationOrder",
        params: &[("patient", "pat-001"), ("_count", "10")],
        expect: |p| (medication_type(p), vec![("patient", "pat-001".into()), ("_count", "10".into())]),
    },
    Search {
        faces: &[Stu3],
        path: "MedicationRequest",
        params: &[("patient", "pat-001"), ("_count", "10")],
        expect: |p| (medication_type(p), vec![("patient", "pat-001".into()), ("_count", "10".into())]),
    },
    Search {
        faces: &[Dstu2, Stu3],
        path: "Coverage",
        params: &[("patient", "pat-001")],
        expect: |p| ("Coverage", vec![(if p == Stu3 { "beneficiary" } else { "patient" }, "pat-001".into())]),
    },
];

/// The served types that have the same name in every version.
fn same_name_types() -> impl Iterator<Item = &'static str> {
    fhirgate_shaper_fhir::resources::SERVED.iter().copied().filter(|t| *t != "MedicationRequest")
}

fn shape_request(
    face: FhirVersion,
    provider: FhirVersion,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(String, Vec<(String, String)>), fhirgate_guest_sdk::types::Denial> {
    let req = UpstreamRequest {
        path: path.into(),
        params: params.iter().map(|(n, v)| Param { name: (*n).into(), value: (*v).into() }).collect(),
    };
    let out = request::shape(&exchange(face, provider, Interaction::Search), req)?;
    Ok((out.path, out.params.into_iter().map(|p| (p.name, p.value)).collect()))
}

#[test]
fn every_search_of_the_interfaces_reaches_every_provider_version() {
    for s in SEARCHES {
        for (&face, provider) in s.faces.iter().flat_map(|f| PROVIDERS.into_iter().map(move |p| (f, p))) {
            let what = format!("{face:?} {}?{:?} → {provider:?}", s.path, s.params);
            let (path, params) =
                shape_request(face, provider, s.path, s.params).unwrap_or_else(|d| panic!("{what}: {d:?}"));
            let (want_path, want) = (s.expect)(provider);
            assert_eq!(path, want_path, "{what}");
            let want: Vec<(String, String)> = want.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
            assert_eq!(params, want, "{what}");
        }
    }
}

#[test]
fn searches_of_every_type_accept_id_and_count() {
    for face in FACES {
        for rt in same_name_types() {
            for provider in PROVIDERS {
                let (path, params) = shape_request(face, provider, rt, &[("_id", "x"), ("_count", "2")]).unwrap();
                assert_eq!(path, rt);
                assert_eq!(params.len(), 2);
            }
        }
    }
}

#[test]
fn reads_are_renamed_for_the_provider() {
    for face in FACES {
        for provider in PROVIDERS {
            for rt in same_name_types() {
                let (path, params) = shape_request(face, provider, &format!("{rt}/abc-1"), &[]).unwrap();
                assert_eq!((path.as_str(), params.len()), (format!("{rt}/abc-1").as_str(), 0));
            }
            let app = if face == Dstu2 { "MedicationOrder" } else { "MedicationRequest" };
            let (path, _) = shape_request(face, provider, &format!("{app}/rx-1"), &[]).unwrap();
            assert_eq!(path, format!("{}/rx-1", medication_type(provider)), "{face:?} → {provider:?}");
        }
    }
}

#[test]
fn parameters_the_gateway_cannot_honour_are_refused() {
    // Resource type, parameters, and the parameter the refusal must name.
    let refused: &[(&str, Params, &str)] = &[
        ("Patient", &[("address", "Springfield")], "address"),
        ("Patient", &[("_sort", "birthdate")], "_sort"),
        ("Patient", &[("family:missing", "true")], "family:missing"),
        ("Patient", &[("_elements", "name")], "_elements"),
        ("Observation", &[("patient", "1"), ("code", "8867-4")], "code"),
        ("Observation", &[("patient", "1"), ("_sort", "-value-quantity")], "value-quantity"),
        ("Observation", &[("date", "ge2024-01-01")], "date"),
        ("Observation", &[("patient.name", "chau")], "patient.name"),
        ("Condition", &[("patient", "1"), ("clinical-status", "active")], "clinical-status"),
        ("Encounter", &[("patient", "1"), ("_include", "Encounter:location")], "_include"),
        ("AllergyIntolerance", &[("patient", "1"), ("_revinclude", "Provenance:target")], "_revinclude"),
        ("Coverage", &[("beneficiary", "1")], "beneficiary"),
        ("Location", &[("name", "Ward")], "name"),
    ];
    for face in FACES {
        for provider in PROVIDERS {
            for (rt, params, named) in refused {
                let what = format!("{face:?} {rt}?{params:?} → {provider:?}");
                let d = shape_request(face, provider, rt, params).expect_err(&what);
                assert_eq!((d.status, d.code.as_str()), (400, "not-supported"), "{what}");
                assert!(d.message.contains(named), "{what}: {}", d.message);
            }
            for (rt, params) in [("MedicationStatement", &[("status", "active")]), ("Encounter", &[("type", "x")])] {
                let d = shape_request(face, provider, rt, params).unwrap_err();
                assert_eq!(d.status, 400);
            }
            // A read takes no search parameters.
            let d = shape_request(face, provider, "Patient/1", &[("_summary", "true")]).unwrap_err();
            assert_eq!((d.status, d.code.as_str()), (400, "not-supported"));
            assert!(d.message.contains("_summary"));
            // The other face's medication type does not exist on this one.
            let other = if face == Dstu2 { "MedicationRequest" } else { "MedicationOrder" };
            assert_eq!(shape_request(face, provider, other, &[]).unwrap_err().status, 404);
        }
    }
}
