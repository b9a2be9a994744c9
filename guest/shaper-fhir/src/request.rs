//! Search parameter translation: the app's DSTU2 or STU3 search, as a search
//! the provider's version understands with the meaning the app intends.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::params::split_modifier;
use fhirgate_guest_sdk::types::{Denial, FhirVersion, Param};

use crate::wit::{Exchange, UpstreamRequest};

/// Parameters whose app-side meaning is "contains" although the plain FHIR
/// parameter means "starts with" (interfaces.md: `family` on STU3, `given` and
/// `name` on both faces).
fn substring_params(client: FhirVersion) -> &'static [&'static str] {
    match client {
        FhirVersion::Stu3 => &["family", "given", "name"],
        FhirVersion::Dstu2 | FhirVersion::R4 => &["given", "name"],
    }
}

/// Translates one upstream request.
pub fn shape(exchange: &Exchange, request: UpstreamRequest) -> Result<UpstreamRequest, Denial> {
    let mut params = Vec::with_capacity(request.params.len());
    for p in request.params {
        let (base, modifier) = split_modifier(&p.name);
        match (base, modifier) {
            ("_format", _) => {
                if !p.value.contains("json") {
                    return Err(deny(406, "not-supported", "This gateway answers in JSON only."));
                }
            }
            ("_sort", Some(dir @ ("asc" | "desc"))) => {
                params.push(sort_param(exchange.upstream_version, &p.value, dir == "desc"));
            }
            ("_sort", None) => {
                let (key, desc) = match p.value.strip_prefix('-') {
                    Some(k) => (k, true),
                    None => (p.value.as_str(), false),
                };
                params.push(sort_param(exchange.upstream_version, key, desc));
            }
            ("_sort", Some(other)) => {
                return Err(deny(400, "invalid-param", format!("Unknown `_sort` modifier `{other}`.")));
            }
            (name, None) if substring_params(exchange.client_version).contains(&name) => {
                params.push(Param { name: format!("{name}:contains"), value: p.value });
            }
            _ => params.push(p),
        }
    }
    Ok(UpstreamRequest { path: request.path, params })
}

/// DSTU2 sorts with `_sort:desc=key`; STU3 and R4 with `_sort=-key`.
fn sort_param(upstream: FhirVersion, key: &str, desc: bool) -> Param {
    match (upstream, desc) {
        (FhirVersion::Dstu2, true) => Param { name: "_sort:desc".into(), value: key.into() },
        (FhirVersion::Dstu2, false) => Param { name: "_sort:asc".into(), value: key.into() },
        (_, true) => Param { name: "_sort".into(), value: format!("-{key}") },
        (_, false) => Param { name: "_sort".into(), value: key.into() },
    }
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

    fn run(client: FhirVersion, upstream: FhirVersion, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let req = UpstreamRequest {
            path: "Patient".into(),
            params: params.iter().map(|(n, v)| Param { name: (*n).into(), value: (*v).into() }).collect(),
        };
        shape(&ex(client, upstream), req).unwrap().params.into_iter().map(|p| (p.name, p.value)).collect()
    }

    #[test]
    fn stu3_family_means_contains() {
        let out = run(FhirVersion::Stu3, FhirVersion::R4, &[("family", "chau"), ("given", "hu")]);
        assert_eq!(out, vec![("family:contains".into(), "chau".into()), ("given:contains".into(), "hu".into())]);
    }

    #[test]
    fn dstu2_family_contains_passes_and_sort_translates() {
        let out = run(
            FhirVersion::Dstu2,
            FhirVersion::R4,
            &[("family:contains", "ch"), ("_sort:desc", "date"), ("birthdate", "1970-01-01")],
        );
        assert_eq!(
            out,
            vec![
                ("family:contains".into(), "ch".into()),
                ("_sort".into(), "-date".into()),
                ("birthdate".into(), "1970-01-01".into())
            ]
        );
        let out = run(FhirVersion::Stu3, FhirVersion::Dstu2, &[("_sort", "-date")]);
        assert_eq!(out, vec![("_sort:desc".into(), "date".into())]);
    }

    #[test]
    fn xml_is_refused() {
        let req = UpstreamRequest {
            path: "Patient".into(),
            params: vec![Param { name: "_format".into(), value: "xml".into() }],
        };
        let d = shape(&ex(FhirVersion::Stu3, FhirVersion::R4), req).unwrap_err();
        assert_eq!(d.status, 406);
    }
}
