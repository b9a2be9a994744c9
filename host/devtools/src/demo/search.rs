//! Searches of the demo provider, strict as the server is: each release's
//! parameters for each resource type, named as a server of that release
//! names them, and an unknown parameter, modifier or sort refused. Results
//! are paged with `_count`/`_offset` into searchset Bundles of the release's
//! shape, with `self`/`next`/`previous` links on the provider's base.

use std::borrow::Cow;
use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};

use super::resources::{Dataset, Kind, sort_date};
use fhirgate_core::fhir::Version;

/// Page size when `_count` is absent, and the largest accepted.
pub const DEFAULT_COUNT: usize = 20;
/// The largest: a page of about 270 KB of Patients (the comparative
/// benchmark's 170 KB searchset needs ~160).
pub const MAX_COUNT: usize = 250;

/// Why a search is refused: a 400 OperationOutcome's code and diagnostics.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status: StatusCode::BAD_REQUEST, code, message: message.into() }
}

/// The Patient search parameters, the same in every release.
const PATIENT_PARAMS: &[(&str, &str)] = &[
    ("_id", "token"),
    ("family", "string"),
    ("given", "string"),
    ("name", "string"),
    ("birthdate", "date"),
    ("gender", "token"),
    ("identifier", "token"),
];

/// How a type other than Patient is searched in one release.
struct Spec {
    /// Parameters that take the patient (`id` or `Patient/id`): `patient`,
    /// and `subject` where the release defines it for the type.
    patient: &'static [&'static str],
    /// The date parameter, which also names the `_sort` key: when the
    /// resource was measured, met, recorded or written ([`sort_date`]).
    date: Option<&'static str>,
    /// `category` (vital-signs and the like).
    category: bool,
    /// `name` (Location).
    name: bool,
}

fn spec(v: Version, kind: Kind) -> Spec {
    use Version::*;
    let none = Spec { patient: &[], date: None, category: false, name: false };
    let with_subject: &'static [&'static str] = if v == Dstu2 { &["patient"] } else { &["patient", "subject"] };
    match kind {
        Kind::Patient => none,
        Kind::Location => Spec { name: true, ..none },
        Kind::Observation => Spec { patient: &["patient", "subject"], date: Some("date"), category: true, name: false },
        Kind::Condition => Spec {
            patient: with_subject,
            date: Some(match v {
                R4 => "recorded-date",
                Stu3 => "asserted-date",
                Dstu2 => "date-recorded",
            }),
            ..none
        },
        Kind::Encounter => Spec { patient: with_subject, date: Some("date"), ..none },
        Kind::AllergyIntolerance => Spec { patient: &["patient"], date: Some("date"), ..none },
        Kind::MedicationRequest => Spec { patient: &["patient", "subject"], date: Some("authoredon"), ..none },
        Kind::MedicationOrder => Spec { patient: &["patient"], date: Some("datewritten"), ..none },
        Kind::MedicationStatement => {
            Spec { patient: with_subject, date: Some(if v == Dstu2 { "effectivedate" } else { "effective" }), ..none }
        }
        // STU3 and R4 name the insured `beneficiary`; R4 adds `patient`, and
        // `patient` is accepted in every release, as the app searches by it.
        Kind::Coverage => Spec { patient: if v == Dstu2 { &["patient"] } else { &["patient", "beneficiary"] }, ..none },
    }
}

/// The search parameters of `kind` in release `v`, as (name, type) pairs for
/// the capability statement.
pub fn parameters(v: Version, kind: Kind) -> Vec<(&'static str, &'static str)> {
    if kind == Kind::Patient {
        return PATIENT_PARAMS.to_vec();
    }
    let s = spec(v, kind);
    let mut params = vec![("_id", "token")];
    params.extend(s.patient.iter().map(|p| (*p, "reference")));
    params.extend(s.date.map(|d| (d, "date")));
    if s.category {
        params.push(("category", "token"));
    }
    if s.name {
        params.push(("name", "string"));
    }
    params
}

/// How a string parameter matches (FHIR R4 §3.1.1.5.7).
#[derive(Clone, Copy)]
enum StringMatch {
    StartsWith,
    Contains,
    Exact,
}

fn string_matches(candidate: &str, wanted: &str, how: StringMatch) -> bool {
    match how {
        StringMatch::Exact => candidate == wanted,
        StringMatch::StartsWith => candidate.to_lowercase().starts_with(&wanted.to_lowercase()),
        StringMatch::Contains => candidate.to_lowercase().contains(&wanted.to_lowercase()),
    }
}

fn strs(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn name_parts<'a>(pt: &'a Value, part: &str) -> Vec<&'a str> {
    pt["name"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| match part {
            "any" => ["family", "given", "prefix", "suffix", "text"].iter().flat_map(|k| strs(&n[*k])).collect(),
            k => strs(&n[k]),
        })
        .collect()
}

type Filter = Box<dyn Fn(&Value) -> bool>;

/// Which way a `_sort` orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Ascending,
    Descending,
}

/// Runs the search `query` (form-encoded) of `kind` and returns a searchset
/// Bundle; `base` is the provider's own base URL, for `fullUrl`s and links.
pub fn search(data: &Dataset, base: &str, kind: Kind, query: &str) -> Result<Value, Refusal> {
    let v = data.version();
    let spec = spec(v, kind);
    let mut filters: Vec<Filter> = Vec::new();
    let mut patients: Option<BTreeSet<usize>> = None;
    let mut order = None;
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    let mut kept = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        let (param, modifier) = match name.split_once(':') {
            Some((b, m)) => (b.to_owned(), Some(m.to_owned())),
            None => (name.clone(), None),
        };
        let alternatives: Vec<String> = value.split(',').map(str::to_owned).collect();
        let unknown = || refuse("not-supported", format!("Unknown or unsupported search parameter `{name}`."));
        match (param.as_str(), modifier.as_deref()) {
            ("_count", None) => match value.parse::<usize>() {
                Ok(c) => count = c.min(MAX_COUNT),
                Err(_) => return Err(refuse("invalid", "`_count` must be a number.")),
            },
            ("_offset", None) => match value.parse::<usize>() {
                Ok(o) => offset = o,
                Err(_) => return Err(refuse("invalid", "`_offset` must be a number.")),
            },
            ("_format" | "_pretty", _) => continue,
            ("_id", None) => filters.push(Box::new(move |r| alternatives.iter().any(|a| r["id"] == a.as_str()))),
            ("_sort", modifier) if kind != Kind::Patient => {
                order = Some(sort_order(v, &spec, modifier, &value)?);
            }
            _ if kind == Kind::Patient => {
                filters.push(patient_filter(&param, modifier.as_deref(), alternatives)?.ok_or_else(unknown)?)
            }
            (p, None) if spec.patient.contains(&p) => {
                let named: BTreeSet<usize> = alternatives.iter().filter_map(|a| patient_index(data, a)).collect();
                patients = Some(match patients {
                    Some(before) => before.intersection(&named).copied().collect(),
                    None => named,
                });
            }
            (p, None) if spec.date == Some(p) => filters.push(date_filter(&alternatives, sort_date)?),
            ("category", None) if spec.category => filters.push(Box::new(move |r| {
                let categories = match &r["category"] {
                    Value::Array(list) => list.iter().collect(),
                    one => vec![one],
                };
                alternatives.iter().any(|a| {
                    let (system, code) = match a.split_once('|') {
                        Some((s, c)) => (Some(s), c),
                        None => (None, a.as_str()),
                    };
                    categories.iter().flat_map(|c| c["coding"].as_array().into_iter().flatten()).any(|coding| {
                        coding["code"] == code && system.is_none_or(|s| s.is_empty() || coding["system"] == s)
                    })
                })
            })),
            ("name", m) if spec.name => {
                let how = string_match(m)?;
                filters.push(Box::new(move |r| {
                    let name = r["name"].as_str().unwrap_or_default();
                    alternatives.iter().any(|a| string_matches(name, a, how))
                }));
            }
            _ => return Err(unknown()),
        }
        if param != "_offset" {
            kept.push((name, value));
        }
    }

    let only: Option<Vec<usize>> = patients.map(|set| set.into_iter().collect());
    let mut matches: Vec<Cow<'_, Value>> =
        data.all(kind, only.as_deref()).into_iter().filter(|r| filters.iter().all(|f| f(r))).collect();
    if let Some(order) = order {
        // Stable: equal dates keep the server's order.
        matches.sort_by(|a, b| {
            let by_date = sort_date(a).cmp(&sort_date(b));
            if order == Order::Descending { by_date.reverse() } else { by_date }
        });
    }
    let total = matches.len();
    let page: Vec<&Value> = matches.iter().skip(offset).take(count).map(|r| r.as_ref()).collect();
    let link = |off: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if !kept.iter().any(|(k, _)| k == "_count") {
            ser.append_pair("_count", &count.to_string());
        }
        if off > 0 {
            ser.append_pair("_offset", &off.to_string());
        }
        format!("{base}/{}?{}", kind.name(), ser.finish())
    };
    let mut links = vec![json!({ "relation": "self", "url": link(offset) })];
    if count > 0 && offset + count < total {
        links.push(json!({ "relation": "next", "url": link(offset + count) }));
    }
    if offset > 0 {
        links.push(json!({ "relation": "previous", "url": link(offset.saturating_sub(count)) }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": format!("search-{:016x}", fxhash(&format!("{}?{query}", kind.name()))),
        "meta": { "lastUpdated": "2026-01-15T09:30:00Z" },
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": page.iter().map(|r| json!({
            "fullUrl": format!("{base}/{}/{}", kind.name(), r["id"].as_str().unwrap_or_default()),
            "resource": r,
            "search": { "mode": "match" }
        })).collect::<Vec<_>>(),
    });
    if v == Version::R4 {
        // `Bundle.timestamp` is new in R4.
        bundle["timestamp"] = json!("2026-01-15T09:30:00Z");
    }
    Ok(bundle)
}

/// The order a `_sort` asks for. STU3 and R4 write `_sort=-date`; DSTU2
/// writes `_sort:desc=date` (and `_sort:asc=date` or `_sort=date`).
fn sort_order(v: Version, spec: &Spec, modifier: Option<&str>, value: &str) -> Result<Order, Refusal> {
    let Some(key) = spec.date else {
        return Err(refuse("not-supported", "This resource type cannot be sorted."));
    };
    let (order, field) = match (v, modifier) {
        (Version::Dstu2, None | Some("asc")) => (Order::Ascending, value),
        (Version::Dstu2, Some("desc")) => (Order::Descending, value),
        (_, None) => match value.strip_prefix('-') {
            Some(field) => (Order::Descending, field),
            None => (Order::Ascending, value),
        },
        (_, Some(m)) => {
            let hint = format!("FHIR {} sorts with `_sort={key}` or `_sort=-{key}`", v.number());
            return Err(refuse("not-supported", format!("Unknown search parameter `_sort:{m}`: {hint}.")));
        }
    };
    if field != key {
        return Err(refuse("not-supported", format!("Cannot sort by `{field}`; only by `{key}`.")));
    }
    Ok(order)
}

/// The patient a `patient`/`subject` value names (`id` or `Patient/id`).
fn patient_index(data: &Dataset, value: &str) -> Option<usize> {
    let id = match value.rsplit_once('/') {
        Some((rest, id)) if rest == "Patient" || rest.ends_with("/Patient") => id,
        Some(_) => return None,
        None => value,
    };
    data.patient_index(id)
}

fn string_match(modifier: Option<&str>) -> Result<StringMatch, Refusal> {
    match modifier {
        None => Ok(StringMatch::StartsWith),
        Some("contains") => Ok(StringMatch::Contains),
        Some("exact") => Ok(StringMatch::Exact),
        Some(other) => Err(refuse("not-supported", format!("Unsupported modifier `:{other}`."))),
    }
}

/// The filter of a Patient parameter; `None` when there is no such parameter.
fn patient_filter(param: &str, modifier: Option<&str>, alternatives: Vec<String>) -> Result<Option<Filter>, Refusal> {
    Ok(Some(match (param, modifier) {
        ("family" | "given" | "name", m) => {
            let how = string_match(m)?;
            let part = if param == "name" { "any" } else { param }.to_owned();
            Box::new(move |pt| {
                let parts = name_parts(pt, &part);
                alternatives.iter().any(|a| parts.iter().any(|c| string_matches(c, a, how)))
            })
        }
        ("birthdate", None) => date_filter(&alternatives, |pt| pt["birthDate"].as_str())?,
        ("gender", None) => Box::new(move |pt| alternatives.iter().any(|a| pt["gender"] == a.as_str())),
        ("identifier", None) => Box::new(move |pt| {
            alternatives.iter().any(|a| {
                let (system, v) = match a.split_once('|') {
                    Some((s, v)) => (Some(s), v),
                    None => (None, a.as_str()),
                };
                pt["identifier"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|id| id["value"] == v && system.is_none_or(|s| s.is_empty() || id["system"] == s))
            })
        }),
        _ => return Ok(None),
    }))
}

/// A date parameter's filter: any of `alternatives` (`[prefix]date`, the
/// date to day, month or year) compared with the date `of` reads, at the
/// parameter's precision.
fn date_filter(alternatives: &[String], of: fn(&Value) -> Option<&str>) -> Result<Filter, Refusal> {
    let mut tests = Vec::new();
    for a in alternatives {
        let (prefix, date) = match a.get(..2) {
            Some(pre @ ("eq" | "ne" | "lt" | "le" | "gt" | "ge")) => (pre.to_owned(), a[2..].to_owned()),
            _ => ("eq".to_owned(), a.clone()),
        };
        if !valid_date(&date) {
            return Err(refuse("invalid", format!("`{a}` is not a FHIR date.")));
        }
        tests.push((prefix, date));
    }
    Ok(Box::new(move |r| {
        let Some(b) = of(r) else { return false };
        tests.iter().any(|(pre, d)| {
            let cmp = b.get(..d.len()).unwrap_or(b).cmp(d.as_str());
            match pre.as_str() {
                "eq" => cmp.is_eq(),
                "ne" => !cmp.is_eq(),
                "lt" => cmp.is_lt(),
                "le" => cmp.is_le(),
                "gt" => cmp.is_gt(),
                _ => cmp.is_ge(),
            }
        })
    }))
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b[4] == b'-' && digits(5..7),
        10 => digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10),
        _ => false,
    }
}

/// FNV-1a, for stable Bundle ids.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::data;

    const RELEASES: [Version; 3] = [Version::R4, Version::Stu3, Version::Dstu2];
    const BASE: &str = "http://provider.test/fhir";

    fn ids(bundle: &Value) -> Vec<String> {
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect()
    }

    fn link(bundle: &Value, relation: &str) -> Option<String> {
        bundle["link"].as_array().unwrap().iter().find(|l| l["relation"] == relation).map(|l| {
            let url = l["url"].as_str().unwrap();
            url.split_once('?').unwrap().1.to_owned()
        })
    }

    #[test]
    fn sorts_newest_first_in_each_release_syntax() {
        for v in RELEASES {
            let data = Dataset::new(v, 60);
            for kind in Kind::of_release(v) {
                let Some(key) = spec(v, kind).date else { continue };
                let (desc, asc) = match v {
                    Version::Dstu2 => (format!("_sort:desc={key}"), format!("_sort:asc={key}")),
                    _ => (format!("_sort=-{key}"), format!("_sort={key}")),
                };
                for i in [0, 1, 7, 30] {
                    let who = format!("patient={}&_count=100", data::patient_id(i));
                    let newest = search(&data, BASE, kind, &format!("{who}&{desc}")).unwrap();
                    let oldest = search(&data, BASE, kind, &format!("{who}&{asc}")).unwrap();
                    let dates = |b: &Value| -> Vec<String> {
                        b["entry"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| sort_date(&e["resource"]).unwrap().to_owned())
                            .collect()
                    };
                    let (down, up) = (dates(&newest), dates(&oldest));
                    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{v:?} {kind:?} {down:?}");
                    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{v:?} {kind:?} {up:?}");
                    assert_eq!(down.len(), up.len());
                }
            }
            // Vital signs: the latest first, from a server order that is not.
            let unsorted = search(&data, BASE, Kind::Observation, "patient=pat-001").unwrap();
            let sorted = search(
                &data,
                BASE,
                Kind::Observation,
                &format!(
                    "patient=pat-001&{}",
                    match v {
                        Version::Dstu2 => "_sort:desc=date",
                        _ => "_sort=-date",
                    }
                ),
            )
            .unwrap();
            assert_ne!(ids(&unsorted), ids(&sorted));
            let latest = data
                .all(Kind::Observation, Some(&[0]))
                .into_iter()
                .filter_map(|o| sort_date(&o).map(str::to_owned))
                .max();
            assert_eq!(sort_date(&sorted["entry"][0]["resource"]).map(str::to_owned), latest);
        }
    }

    #[test]
    fn paging_covers_every_match_once() {
        for v in RELEASES {
            let data = Dataset::new(v, 12);
            for kind in Kind::of_release(v) {
                let everything: Vec<String> =
                    data.all(kind, None).iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
                let mut seen = Vec::new();
                let mut query = Some("_count=7".to_owned());
                let mut pages = 0;
                while let Some(q) = query {
                    let page = search(&data, BASE, kind, &q).unwrap();
                    assert_eq!(page["total"], everything.len(), "{v:?} {kind:?}");
                    assert_eq!(link(&page, "previous").is_some(), pages > 0, "{q}");
                    assert_eq!(link(&page, "self").as_ref(), Some(&q));
                    seen.extend(ids(&page));
                    query = link(&page, "next");
                    pages += 1;
                }
                assert_eq!(seen, everything, "{v:?} {kind:?}");
                assert_eq!(pages, everything.len().div_ceil(7));
                let unique: BTreeSet<&String> = seen.iter().collect();
                assert_eq!(unique.len(), seen.len(), "{v:?} {kind:?}: ids are unique");
            }
        }
        // Links keep the parameters, on the provider's base.
        let data = Dataset::new(Version::Stu3, 60);
        let page = search(&data, BASE, Kind::Observation, "patient=pat-002&_sort=-date&_count=4&_offset=4").unwrap();
        let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap();
        assert_eq!(next["url"], format!("{BASE}/Observation?patient=pat-002&_sort=-date&_count=4&_offset=8"));
        assert_eq!(link(&page, "previous").as_deref(), Some("patient=pat-002&_sort=-date&_count=4"));
        assert!(page.get("timestamp").is_none(), "Bundle.timestamp is R4's");
    }

    #[test]
    fn results_are_deterministic() {
        for v in RELEASES {
            let (a, b) = (Dataset::new(v, 60), Dataset::new(v, 120));
            for kind in Kind::of_release(v) {
                let q = "patient=pat-003,pat-042&_count=100";
                let q = if kind == Kind::Patient {
                    "_id=pat-003,pat-042"
                } else if kind == Kind::Location {
                    ""
                } else {
                    q
                };
                assert_eq!(search(&a, BASE, kind, q).unwrap(), search(&b, BASE, kind, q).unwrap(), "{v:?} {kind:?}");
            }
        }
        assert_eq!(
            Dataset::new(Version::R4, 60)
                .all(Kind::Patient, None)
                .iter()
                .map(|p| p.as_ref().clone())
                .collect::<Vec<_>>(),
            data::patients()
        );
    }

    #[test]
    fn patients_are_named_by_id_or_reference() {
        let data = Dataset::new(Version::R4, 60);
        let total = |q: &str| search(&data, BASE, Kind::Encounter, q).unwrap()["total"].as_u64().unwrap();
        let one = total("patient=pat-001");
        assert!(one >= 1);
        assert_eq!(total("patient=Patient/pat-001"), one);
        assert_eq!(total(&format!("subject={BASE}/Patient/pat-001")), one);
        assert_eq!(total("patient=pat-001,pat-002"), one + total("patient=pat-002"));
        assert_eq!(total("patient=Group/pat-001"), 0);
        assert_eq!(total("patient=pat-999"), 0);
        assert_eq!(total("patient=pat-001&subject=pat-002"), 0);
        assert_eq!(total("patient=pat-001&subject=pat-001"), one);
        let bundle = search(&data, BASE, Kind::Encounter, "patient=pat-001").unwrap();
        for e in bundle["entry"].as_array().unwrap() {
            assert_eq!(e["resource"]["subject"]["reference"], "Patient/pat-001");
        }
    }

    #[test]
    fn vital_signs_by_category_and_date() {
        for v in RELEASES {
            let data = Dataset::new(v, 60);
            let total = |q: &str| search(&data, BASE, Kind::Observation, q).unwrap()["total"].as_u64().unwrap();
            let all = total("patient=pat-005");
            assert!((10..=15).contains(&all), "{all}");
            assert_eq!(total("patient=pat-005&category=vital-signs"), all);
            assert_eq!(total("patient=pat-005&category=laboratory"), 0);
            let system = super::super::resources::hl7_system(v, "observation-category");
            assert_eq!(total(&format!("patient=pat-005&category={system}|vital-signs")), all);
            assert_eq!(total("patient=pat-005&category=http://example.org|vital-signs"), 0);
            let recent = total("patient=pat-005&date=ge2025-12");
            assert!(recent >= 5, "{recent} of {all}");
            assert_eq!(recent + total("patient=pat-005&date=lt2025-12"), all);
            assert!(search(&data, BASE, Kind::Observation, "date=2025-12-01T10:00:00Z").is_err());
        }
    }
}
