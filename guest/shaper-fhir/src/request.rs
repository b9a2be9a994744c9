//! Request shaping: the app's DSTU2 or STU3 read or search, as the
//! provider's version expresses it with the meaning the app intends. The
//! resource type is renamed where the versions differ (MedicationOrder ↔
//! MedicationRequest), and every search parameter the app uses is listed per
//! face and resource type: any other is refused, never silently dropped.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::params::split_modifier;
use fhirgate_guest_sdk::types::{Denial, FhirVersion, Param};

use crate::resources::elements::{map_terminology_url, to_terminology_url};
use crate::resources::{SERVED, canonical_type, name, type_in};
use crate::wit::{Exchange, UpstreamRequest};

/// How one of the app's search parameters is sent upstream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// As is: tokens, dates, references and modifiers every release shares.
    Same,
    /// The app means "contains" where plain FHIR means "starts with"
    /// (interfaces.md: `given` and `name`, and `family` on STU3): sent with
    /// `:contains`.
    Contains,
    /// Under another name.
    Renamed(&'static str),
    /// A `category` token, its HL7 code system URL in the provider's release.
    Category,
    /// `_sort`, by one of these keys.
    Sort(&'static [&'static str]),
    /// `_count`, a number.
    Count,
}

/// The rule for parameter `base` (with `modifier`) of a search of `rt` (its
/// STU3 name) on the `face`, sent to a provider speaking `upstream`; `None`
/// for a parameter the gateway does not honour.
fn rule(face: FhirVersion, upstream: FhirVersion, rt: &str, base: &str, modifier: Option<&str>) -> Option<Rule> {
    use FhirVersion::{Dstu2, Stu3};
    let plain = modifier.is_none();
    let string_modifier = matches!(modifier, Some("contains" | "exact"));
    Some(match (rt, base) {
        (_, "_id") if plain => Rule::Same,
        (_, "_count") if plain => Rule::Count,
        ("Patient", "id") if plain => Rule::Renamed("_id"),
        ("Patient", "family") if plain && face == Stu3 => Rule::Contains,
        // A DSTU2 app asks for a substring with `family:contains`; a plain
        // `family` keeps its FHIR meaning.
        ("Patient", "family") if plain && face == Dstu2 => Rule::Same,
        ("Patient", "given" | "name") if plain => Rule::Contains,
        ("Patient", "family" | "given" | "name") if string_modifier => Rule::Same,
        ("Patient", "birthdate" | "gender" | "identifier") if plain => Rule::Same,
        ("Observation" | "Encounter", "_sort") if plain || matches!(modifier, Some("asc" | "desc")) => {
            Rule::Sort(&["date"])
        }
        ("Observation", "category") if plain => Rule::Category,
        // STU3 Coverage has no `patient` parameter: the patient is the
        // beneficiary.
        ("Coverage", "patient") if plain && upstream == Stu3 => Rule::Renamed("beneficiary"),
        // DSTU2 defines no `patient` search on Coverage; DSTU2 servers that
        // serve Coverage commonly accept it all the same, so it is sent as
        // the app wrote it. A provider that refuses it answers 400, which the
        // app gets as an OperationOutcome; `check-provider` reports a
        // provider that refuses or ignores it.
        (
            "Observation"
            | "Condition"
            | "Encounter"
            | "AllergyIntolerance"
            | "MedicationRequest"
            | "MedicationStatement"
            | "Coverage",
            "patient",
        ) if plain => Rule::Same,
        _ => return None,
    })
}

/// Translates one upstream request.
pub fn shape(exchange: &Exchange, request: UpstreamRequest) -> Result<UpstreamRequest, Denial> {
    let (face, upstream) = (exchange.client_version, exchange.upstream_version);
    let mut segments: Vec<&str> = request.path.split('/').collect();
    let face_type = segments[0];
    let Some(canonical) = canonical_type(face_type, face) else {
        return Err(deny(404, "not-supported", format!("`{face_type}` is not a {} resource type.", name(face))));
    };
    let search = matches!(segments.as_slice(), [_] | [_, "_search"]);
    let read = matches!(segments.as_slice(), [_, id] | [_, id, "_history", _] if *id != "_search");
    if !search && !read {
        return Err(deny(501, "not-supported", "Only reads and searches are supported."));
    }
    if !SERVED.contains(&canonical) {
        if face != upstream {
            return Err(deny(
                501,
                "not-supported",
                format!("`{face_type}` cannot be converted from the provider's {} to {}.", name(upstream), name(face)),
            ));
        }
        // A type the app's interfaces do not name, from a provider of the
        // face's own version: nothing to convert either way.
        return Ok(UpstreamRequest { path: request.path, params: passthrough(upstream, request.params)? });
    }
    segments[0] = type_in(canonical, upstream);
    let path = segments.join("/");
    let params = if search {
        search_params(exchange, canonical, face_type, request.params)?
    } else {
        read_params(request.params)?
    };
    Ok(UpstreamRequest { path, params })
}

/// `_format` asks for a representation; the gateway answers in JSON only,
/// whatever it asks of the provider.
fn check_format(p: &Param) -> Result<(), Denial> {
    if p.value.contains("json") {
        Ok(())
    } else {
        Err(deny(406, "not-supported", "This gateway answers in JSON only."))
    }
}

fn read_params(params: Vec<Param>) -> Result<Vec<Param>, Denial> {
    for p in &params {
        match split_modifier(&p.name).0 {
            "_format" => check_format(p)?,
            _ => {
                return Err(deny(
                    400,
                    "not-supported",
                    format!("The `{}` parameter is not supported on a read.", p.name),
                ));
            }
        }
    }
    Ok(Vec::new())
}

fn passthrough(upstream: FhirVersion, params: Vec<Param>) -> Result<Vec<Param>, Denial> {
    let mut out = Vec::with_capacity(params.len());
    let mut sorts = Vec::new();
    let mut sort_at = None;
    for p in params {
        let (base, modifier) = split_modifier(&p.name);
        match base {
            "_format" => check_format(&p)?,
            "_sort" => {
                sort_at.get_or_insert(out.len());
                sorts.extend(sort_keys(&p.value, modifier)?);
            }
            _ => out.push(p),
        }
    }
    if let Some(at) = sort_at {
        out.splice(at..at, sort_params(upstream, &sorts));
    }
    Ok(out)
}

fn search_params(exchange: &Exchange, rt: &str, face_type: &str, params: Vec<Param>) -> Result<Vec<Param>, Denial> {
    let (face, upstream) = (exchange.client_version, exchange.upstream_version);
    let mut out = Vec::with_capacity(params.len());
    let mut sorts = Vec::new();
    let mut sort_at = None;
    for p in params {
        let (base, modifier) = split_modifier(&p.name);
        if base == "_format" {
            check_format(&p)?;
            continue;
        }
        let Some(rule) = rule(face, upstream, rt, base, modifier) else {
            return Err(deny(
                400,
                "not-supported",
                format!("The `{}` search parameter is not supported for {face_type} on this server.", p.name),
            ));
        };
        match rule {
            Rule::Same => out.push(p),
            Rule::Contains => out.push(Param { name: format!("{base}:contains"), value: p.value }),
            Rule::Renamed(to) => out.push(Param { name: to.to_owned(), value: p.value }),
            Rule::Category => out.push(Param { name: p.name, value: category(upstream, &p.value) }),
            Rule::Count => {
                if p.value.parse::<u32>().is_err() {
                    return Err(deny(400, "invalid-param", format!("`_count` must be a number, not `{}`.", p.value)));
                }
                out.push(p);
            }
            Rule::Sort(allowed) => {
                sort_at.get_or_insert(out.len());
                for (key, desc) in sort_keys(&p.value, modifier)? {
                    if !allowed.contains(&key.as_str()) {
                        return Err(deny(
                            400,
                            "not-supported",
                            format!("Sorting {face_type} by `{key}` (`_sort`) is not supported on this server."),
                        ));
                    }
                    sorts.push((key, desc));
                }
            }
        }
    }
    if let Some(at) = sort_at {
        out.splice(at..at, sort_params(upstream, &sorts));
    }
    Ok(out)
}

/// The keys of one `_sort` parameter, each with its direction: STU3 and R4
/// write `_sort=-date,code`, DSTU2 `_sort:desc=date`. Either is accepted on
/// either face.
fn sort_keys(value: &str, modifier: Option<&str>) -> Result<Vec<(String, bool)>, Denial> {
    let modifier_desc = match modifier {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(deny(400, "invalid-param", format!("Unknown `_sort` modifier `{other}`."))),
    };
    Ok(value
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| match k.strip_prefix('-') {
            Some(key) => (key.to_owned(), true),
            None => (k.to_owned(), modifier_desc),
        })
        .collect())
}

/// `_sort` in the provider's syntax.
fn sort_params(upstream: FhirVersion, keys: &[(String, bool)]) -> Vec<Param> {
    match upstream {
        FhirVersion::Dstu2 => keys
            .iter()
            .map(|(key, desc)| Param {
                name: if *desc { "_sort:desc" } else { "_sort:asc" }.into(),
                value: key.clone(),
            })
            .collect(),
        _ if keys.is_empty() => Vec::new(),
        _ => {
            let value = keys
                .iter()
                .map(|(key, desc)| if *desc { format!("-{key}") } else { key.clone() })
                .collect::<Vec<_>>()
                .join(",");
            vec![Param { name: "_sort".into(), value }]
        }
    }
}

/// A `category` token (or a comma-separated list), with HL7's code system
/// URL as the provider's release writes it.
fn category(upstream: FhirVersion, value: &str) -> String {
    value
        .split(',')
        .map(|token| match token.split_once('|') {
            Some((system, code)) => {
                let mapped = match upstream {
                    FhirVersion::R4 => to_terminology_url(system),
                    _ => map_terminology_url(system),
                };
                format!("{}|{code}", mapped.as_deref().unwrap_or(system))
            }
            None => token.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhirgate_guest_sdk::types::Interaction;

    fn ex(client: FhirVersion, upstream: FhirVersion) -> Exchange {
        Exchange {
            client_version: client,
            upstream_version: upstream,
            interaction: Interaction::Search,
            gateway_base: "http://g/stu3".into(),
            upstream_base: "http://p/fhir".into(),
        }
    }

    fn run(
        client: FhirVersion,
        upstream: FhirVersion,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<(String, Vec<(String, String)>), Denial> {
        let req = UpstreamRequest {
            path: path.into(),
            params: params.iter().map(|(n, v)| Param { name: (*n).into(), value: (*v).into() }).collect(),
        };
        let out = shape(&ex(client, upstream), req)?;
        Ok((out.path, out.params.into_iter().map(|p| (p.name, p.value)).collect()))
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn stu3_family_means_contains() {
        let (_, out) =
            run(FhirVersion::Stu3, FhirVersion::R4, "Patient", &[("family", "chau"), ("given", "hu")]).unwrap();
        assert_eq!(out, pairs(&[("family:contains", "chau"), ("given:contains", "hu")]));
    }

    #[test]
    fn sort_syntax_follows_the_provider() {
        let (_, out) = run(
            FhirVersion::Dstu2,
            FhirVersion::R4,
            "Observation",
            &[("patient", "p1"), ("_sort:desc", "date"), ("category", "vital-signs")],
        )
        .unwrap();
        assert_eq!(out, pairs(&[("patient", "p1"), ("_sort", "-date"), ("category", "vital-signs")]));
        let (_, out) = run(FhirVersion::Stu3, FhirVersion::Dstu2, "Encounter", &[("_sort", "-date")]).unwrap();
        assert_eq!(out, pairs(&[("_sort:desc", "date")]));
        let (_, out) = run(FhirVersion::Stu3, FhirVersion::Stu3, "Encounter", &[("_sort", "-date")]).unwrap();
        assert_eq!(out, pairs(&[("_sort", "-date")]));
    }

    #[test]
    fn unknown_parameters_and_sort_keys_are_refused() {
        for (path, param) in [
            ("Patient", ("shoe-size", "9")),
            ("Patient", ("_sort", "family")),
            ("Observation", ("code", "8867-4")),
            ("Observation", ("_sort", "-code")),
            ("Condition", ("category", "problem")),
            ("Patient", ("given:missing", "true")),
            ("Observation", ("patient.name", "x")),
            ("MedicationRequest", ("_include", "MedicationRequest:medication")),
        ] {
            let d = run(FhirVersion::Stu3, FhirVersion::R4, path, &[param]).unwrap_err();
            assert_eq!((d.status, d.code.as_str()), (400, "not-supported"), "{path}?{}", param.0);
            let named = param.0.split(':').next().unwrap();
            assert!(d.message.contains(named) || d.message.contains(param.1.trim_start_matches('-')), "{}", d.message);
        }
    }

    #[test]
    fn xml_is_refused() {
        let d = run(FhirVersion::Stu3, FhirVersion::R4, "Patient", &[("_format", "xml")]).unwrap_err();
        assert_eq!(d.status, 406);
        let (_, out) = run(FhirVersion::Stu3, FhirVersion::R4, "Patient/1", &[("_format", "json")]).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn medication_types_are_renamed_for_the_provider() {
        let (path, _) = run(FhirVersion::Dstu2, FhirVersion::R4, "MedicationOrder", &[("patient", "1")]).unwrap();
        assert_eq!(path, "MedicationRequest");
        let (path, _) = run(FhirVersion::Dstu2, FhirVersion::Stu3, "MedicationOrder/7/_history/2", &[]).unwrap();
        assert_eq!(path, "MedicationRequest/7/_history/2");
        let (path, _) = run(FhirVersion::Stu3, FhirVersion::Dstu2, "MedicationRequest/7", &[]).unwrap();
        assert_eq!(path, "MedicationOrder/7");
        let (path, _) = run(FhirVersion::Dstu2, FhirVersion::Dstu2, "MedicationOrder", &[]).unwrap();
        assert_eq!(path, "MedicationOrder");
        assert_eq!(run(FhirVersion::Dstu2, FhirVersion::R4, "MedicationRequest", &[]).unwrap_err().status, 404);
        assert_eq!(run(FhirVersion::Stu3, FhirVersion::Dstu2, "MedicationOrder", &[]).unwrap_err().status, 404);
    }

    #[test]
    fn other_types_pass_only_between_equal_versions() {
        let (path, out) =
            run(FhirVersion::Stu3, FhirVersion::Stu3, "Practitioner", &[("name", "x"), ("_sort:desc", "name")])
                .unwrap();
        assert_eq!((path.as_str(), out), ("Practitioner", pairs(&[("name", "x"), ("_sort", "-name")])));
        assert_eq!(run(FhirVersion::Stu3, FhirVersion::R4, "Practitioner/1", &[]).unwrap_err().status, 501);
    }

    #[test]
    fn category_system_follows_the_provider() {
        let stu3 = "http://hl7.org/fhir/observation-category|vital-signs";
        let r4 = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs";
        let (_, out) = run(FhirVersion::Stu3, FhirVersion::R4, "Observation", &[("category", stu3)]).unwrap();
        assert_eq!(out, pairs(&[("category", r4)]));
        let (_, out) = run(FhirVersion::Stu3, FhirVersion::Dstu2, "Observation", &[("category", stu3)]).unwrap();
        assert_eq!(out, pairs(&[("category", stu3)]));
    }

    #[test]
    fn coverage_patient_is_the_stu3_beneficiary() {
        let (_, out) = run(FhirVersion::Dstu2, FhirVersion::Stu3, "Coverage", &[("patient", "1")]).unwrap();
        assert_eq!(out, pairs(&[("beneficiary", "1")]));
        let (_, out) = run(FhirVersion::Stu3, FhirVersion::R4, "Coverage", &[("patient", "1")]).unwrap();
        assert_eq!(out, pairs(&[("patient", "1")]));
    }

    #[test]
    fn count_must_be_a_number() {
        let d = run(FhirVersion::Stu3, FhirVersion::R4, "Condition", &[("_count", "ten")]).unwrap_err();
        assert_eq!(d.status, 400);
    }
}
