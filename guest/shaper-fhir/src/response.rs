//! Response shaping: the provider's status and JSON into the client's version,
//! with Bundle links and `fullUrl`s moved onto the gateway.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::fhir::{full_url, operation_outcome, rebase_url};
use fhirgate_guest_sdk::types::{Denial, FhirVersion};
use serde_json::{Map, Value};

use crate::resources;
use crate::wit::{Exchange, Shaped};

/// Reads what an answer lacks from the provider: the `upstream` host import
/// in the module, fixed answers in tests.
pub trait Lookup {
    /// The resource at `path` (`Type/id`) on the provider, if it can be read.
    fn read(&self, path: &str) -> Option<Value>;
}

/// No reads: only what the answer itself carries.
pub struct NoLookup;

impl Lookup for NoLookup {
    fn read(&self, _path: &str) -> Option<Value> {
        None
    }
}

/// Shapes one upstream response from what it carries alone.
pub fn shape(exchange: &Exchange, status: u16, body: &[u8]) -> Result<Shaped, Denial> {
    shape_with(exchange, status, body, &NoLookup)
}

/// Shapes one upstream response, reading the Locations of Encounters whose
/// references have no display through `lookup`.
pub fn shape_with(exchange: &Exchange, status: u16, body: &[u8], lookup: &dyn Lookup) -> Result<Shaped, Denial> {
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if status >= 400 => {
            return Ok(provider_error(status, "The provider answered with an error and no FHIR body."));
        }
        Err(_) => return Err(deny(502, "bad-upstream-body", "The provider's answer is not valid JSON.")),
    };
    let Some(resource) = value.as_object_mut() else {
        return Err(deny(502, "bad-upstream-body", "The provider's answer is not a FHIR resource."));
    };
    shape_resource(exchange, resource)?;
    fill_location_displays(resource, &[]);
    let read: Vec<(String, String)> = missing_location_displays(resource)
        .into_iter()
        .filter(|r| r.starts_with("Location/"))
        .filter_map(|r| {
            let location = lookup.read(&r)?;
            let id = r.strip_prefix("Location/")?;
            // Only the Location asked for names the reference.
            if location.get("resourceType")?.as_str()? != "Location" || location.get("id")?.as_str()? != id {
                return None;
            }
            Some((r, location.get("name")?.as_str()?.to_owned()))
        })
        .collect();
    if !read.is_empty() {
        fill_location_displays(resource, &read);
    }
    let status = match status {
        // A provider's own failure is reported to the client as a bad gateway;
        // its OperationOutcome, shaped, travels with it. So is a provider
        // refusing the gateway's credentials: the app's token is not at fault.
        500..=599 | 401 | 407 => 502,
        s => s,
    };
    // Shaped JSON is about as long as the provider's.
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 64);
    serde_json::to_writer(&mut out, &value)
        .map_err(|_| deny(500, "shaping-failed", "The shaped resource could not be serialised."))?;
    let body = out;
    Ok(Shaped { status, body })
}

fn provider_error(status: u16, message: &str) -> Shaped {
    let status = if status >= 500 || status == 401 || status == 407 { 502 } else { status };
    let body = serde_json::to_vec(&operation_outcome("error", "exception", message)).unwrap_or_default();
    Shaped { status, body }
}

/// Shapes one resource in place, recursing into Bundles.
pub fn shape_resource(exchange: &Exchange, resource: &mut Map<String, Value>) -> Result<(), Denial> {
    let Some(rt) = resource.get("resourceType").and_then(Value::as_str).map(str::to_owned) else {
        return Err(deny(502, "bad-upstream-body", "The provider's answer has no resourceType."));
    };
    if rt == "Bundle" {
        return shape_bundle(exchange, resource);
    }
    resources::convert(resource, exchange.upstream_version, exchange.client_version)?;
    let (from, to) = (exchange.upstream_base.trim_end_matches('/'), exchange.gateway_base.trim_end_matches('/'));
    for (key, value) in resource.iter_mut() {
        rebase_provider_urls(value, key, from, to);
    }
    Ok(())
}

/// Moves every URL under the provider's base onto the gateway's: the
/// provider's address must never reach the app. A reference becomes relative
/// (`Type/id`), which the app resolves against the gateway's base. Both
/// bases come without a trailing `/`.
fn rebase_provider_urls(value: &mut Value, key: &str, from: &str, to: &str) {
    match value {
        // Most strings are shorter than a base URL and are not looked at.
        Value::String(s) if s.len() >= from.len() => {
            if let Some(rebased) = rebase_url(s, from, to) {
                let relative = rebased[to.len()..].trim_start_matches('/');
                *s = if key == "reference" && !relative.is_empty() { relative.to_owned() } else { rebased };
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut().filter(|v| worth_a_look(v, from)) {
                rebase_provider_urls(v, key, from, to);
            }
        }
        Value::Object(obj) => {
            for (k, v) in obj.iter_mut().filter(|(_, v)| worth_a_look(v, from)) {
                rebase_provider_urls(v, k, from, to);
            }
        }
        _ => {}
    }
}

/// Whether `value` may hold a URL under `from`: a container, or a string as
/// long as the base at least.
fn worth_a_look(value: &Value, from: &str) -> bool {
    match value {
        Value::String(s) => s.len() >= from.len(),
        Value::Array(_) | Value::Object(_) => true,
        _ => false,
    }
}

fn shape_bundle(exchange: &Exchange, bundle: &mut Map<String, Value>) -> Result<(), Denial> {
    let (from, to) = (exchange.upstream_base.as_str(), exchange.gateway_base.as_str());
    if exchange.client_version != FhirVersion::R4 {
        // `Bundle.timestamp` is new in R4.
        bundle.remove("timestamp");
    }
    if exchange.client_version == FhirVersion::Dstu2 {
        // `Bundle.identifier` is new in STU3.
        bundle.remove("identifier");
    }
    resources::strip_meta(bundle, exchange.client_version);
    if exchange.upstream_version != exchange.client_version
        && let Some(Value::Object(meta)) = bundle.get_mut("meta")
    {
        // Profiles are claims about one release.
        meta.remove("profile");
        if meta.is_empty() {
            bundle.remove("meta");
        }
    }
    if let Some(Value::Array(links)) = bundle.get_mut("link") {
        links.retain_mut(|link| {
            let Some(url) = link.get("url").and_then(Value::as_str) else {
                return false;
            };
            match rebase_url(url, from, to) {
                Some(rebased) => {
                    link["url"] = Value::String(rebased);
                    true
                }
                // A link that is not under the provider's base cannot be
                // followed through the gateway and must not leak.
                None => false,
            }
        });
    }
    if let Some(Value::Array(entries)) = bundle.get_mut("entry") {
        let mut shaped = Vec::with_capacity(entries.len());
        for mut entry in std::mem::take(entries) {
            let Some(entry) = entry.as_object_mut() else {
                return Err(deny(502, "bad-upstream-body", "A Bundle entry is not an object."));
            };
            if let Some(Value::Object(resource)) = entry.get_mut("resource") {
                if let Err(denial) = shape_resource(exchange, resource) {
                    // A resource the provider added to a search (an
                    // `_include`) that cannot be shown in the client's version
                    // is left out; a match the client asked for is not.
                    let mode = entry.get("search").and_then(|s| s.get("mode")).and_then(Value::as_str);
                    if denial.status == 501 && mode == Some("include") {
                        continue;
                    }
                    return Err(denial);
                }
                match full_url(to, resource) {
                    Some(url) => {
                        entry.insert("fullUrl".into(), Value::String(url));
                    }
                    None => {
                        entry.remove("fullUrl");
                    }
                }
            } else {
                entry.remove("fullUrl");
            }
            if let Some(Value::Object(response)) = entry.get_mut("response") {
                if let Some(location) = response.get("location").and_then(Value::as_str) {
                    let location = match resources::retype_reference(location, exchange.client_version) {
                        Some(retyped) if exchange.client_version != exchange.upstream_version => retyped,
                        _ => location.to_owned(),
                    };
                    match rebase_url(&location, from, to) {
                        Some(l) => {
                            response.insert("location".into(), Value::String(l));
                        }
                        None => {
                            response.remove("location");
                        }
                    }
                }
                if exchange.client_version == FhirVersion::Dstu2 {
                    // `Bundle.entry.response.outcome` is new in STU3.
                    response.remove("outcome");
                } else if let Some(Value::Object(outcome)) = response.get_mut("outcome") {
                    shape_resource(exchange, outcome)?;
                }
            }
            shaped.push(Value::Object(std::mem::take(entry)));
        }
        *entries = shaped;
    }
    Ok(())
}

/// Fills the display of each Encounter's Location references from the
/// Locations the answer itself carries (contained, or entries of the same
/// Bundle) and the `read` ones (reference → name): the app shows the
/// patient's location by that display alone.
pub fn fill_location_displays(resource: &mut Map<String, Value>, read: &[(String, String)]) {
    let mut included: Vec<(String, String)> = resource
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| location_name(e.get("resource")?, "Location/"))
        .collect();
    included.extend_from_slice(read);
    for encounter in encounters_mut(resource) {
        let contained: Vec<(String, String)> = encounter
            .get("contained")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| location_name(c, "#"))
            .collect();
        for reference in location_references_mut(encounter) {
            if reference.contains_key("display") {
                continue;
            }
            let Some(target) = reference.get("reference").and_then(Value::as_str) else { continue };
            let name = contained
                .iter()
                .chain(&included)
                .find(|(r, _)| target == r || target.ends_with(&format!("/{r}")))
                .map(|(_, name)| name.clone());
            if let Some(name) = name {
                reference.insert("display".into(), Value::String(name));
            }
        }
    }
}

/// The Location references of the Encounters in `resource` (an Encounter or
/// a Bundle of them) that still have no display once the answer is shaped:
/// the Locations to read from the provider (the `upstream` host import) for
/// their names before the answer goes to the app. Each is listed once, as
/// the shaped answer writes it (`Location/id` for the provider's own).
pub fn missing_location_displays(resource: &Map<String, Value>) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    let encounters: Vec<&Map<String, Value>> = match resource.get("resourceType").and_then(Value::as_str) {
        Some("Encounter") => vec![resource],
        Some("Bundle") => resource
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource").and_then(Value::as_object))
            .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Encounter"))
            .collect(),
        _ => Vec::new(),
    };
    for encounter in encounters {
        for location in encounter.get("location").and_then(Value::as_array).into_iter().flatten() {
            let Some(reference) = location.get("location") else { continue };
            if reference.get("display").is_none()
                && let Some(r) = reference.get("reference").and_then(Value::as_str)
                && !missing.iter().any(|m| m == r)
            {
                missing.push(r.to_owned());
            }
        }
    }
    missing
}

/// A Location's reference (`prefix` and id) and name.
fn location_name(resource: &Value, prefix: &str) -> Option<(String, String)> {
    if resource.get("resourceType")?.as_str()? != "Location" {
        return None;
    }
    Some((format!("{prefix}{}", resource.get("id")?.as_str()?), resource.get("name")?.as_str()?.to_owned()))
}

fn encounters_mut(resource: &mut Map<String, Value>) -> Vec<&mut Map<String, Value>> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Encounter") => vec![resource],
        Some("Bundle") => resource
            .get_mut("entry")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get_mut("resource").and_then(Value::as_object_mut))
            .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Encounter"))
            .collect(),
        _ => Vec::new(),
    }
}

fn location_references_mut(encounter: &mut Map<String, Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    encounter
        .get_mut("location")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get_mut("location").and_then(Value::as_object_mut))
}
