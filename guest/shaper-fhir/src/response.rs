//! Response shaping: the provider's status and JSON into the client's version,
//! with Bundle links and `fullUrl`s moved onto the gateway.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::fhir::{full_url, operation_outcome, rebase_url};
use fhirgate_guest_sdk::types::{Denial, FhirVersion};
use serde_json::{Map, Value};

use crate::resources;
use crate::wit::{Exchange, Shaped};

/// Shapes one upstream response.
pub fn shape(exchange: &Exchange, status: u16, body: &[u8]) -> Result<Shaped, Denial> {
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
    let status = match status {
        // A provider's own failure is reported to the client as a bad gateway;
        // its OperationOutcome, shaped, travels with it. So is a provider
        // refusing the gateway's credentials: the app's token is not at fault.
        500..=599 | 401 | 407 => 502,
        s => s,
    };
    let body = serde_json::to_vec(&value)
        .map_err(|_| deny(500, "shaping-failed", "The shaped resource could not be serialised."))?;
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
    resources::convert(&rt, resource, exchange.upstream_version, exchange.client_version)
}

fn shape_bundle(exchange: &Exchange, bundle: &mut Map<String, Value>) -> Result<(), Denial> {
    let (from, to) = (exchange.upstream_base.as_str(), exchange.gateway_base.as_str());
    if exchange.client_version != FhirVersion::R4 {
        // `Bundle.timestamp` is new in R4.
        bundle.remove("timestamp");
    }
    resources::strip_meta(bundle, exchange.client_version);
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
        for entry in entries {
            let Some(entry) = entry.as_object_mut() else {
                return Err(deny(502, "bad-upstream-body", "A Bundle entry is not an object."));
            };
            if let Some(Value::Object(resource)) = entry.get_mut("resource") {
                shape_resource(exchange, resource)?;
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
                    match rebase_url(location, from, to) {
                        Some(l) => {
                            response.insert("location".into(), Value::String(l));
                        }
                        None => {
                            response.remove("location");
                        }
                    }
                }
                if let Some(Value::Object(outcome)) = response.get_mut("outcome") {
                    shape_resource(exchange, outcome)?;
                }
            }
        }
    }
    Ok(())
}
