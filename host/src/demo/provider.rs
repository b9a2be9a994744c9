//! The demo provider: an R4 FHIR server over the synthetic patients, with the
//! Patient search parameters the app uses. It is strict: an unknown search
//! parameter is a 400 OperationOutcome, so nothing the gateway sends is
//! silently ignored.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::data;
use crate::error::{Body, json_response};
use crate::fhir::outcome::outcome;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// Page size when `_count` is absent, and the largest accepted.
const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;

struct Provider {
    base: String,
    patients: Vec<Value>,
}

/// Serves the provider on `listener`; `base` is its own absolute base URL
/// (ending in `/fhir`), used in `fullUrl`s and links.
pub async fn serve(listener: TcpListener, base: String) {
    let provider = Arc::new(Provider { base, patients: data::patients() });
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let p = provider.clone();
        let service = service_fn(move |req| {
            let p = p.clone();
            async move { Ok::<_, Infallible>(handle(&p, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, FHIR_JSON, outcome("error", code, message).to_string())
}

async fn handle(p: &Provider, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let is_form = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "Body too large."),
    };
    let Some(rest) = path.strip_prefix("/fhir") else {
        return error(StatusCode::NOT_FOUND, "not-found", "Unknown path.");
    };
    let segments: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["metadata"]) => json_response(StatusCode::OK, FHIR_JSON, capability(p).to_string()),
        (&Method::GET, ["Patient", id]) => match p.patients.iter().find(|pt| pt["id"] == *id) {
            Some(pt) => json_response(StatusCode::OK, FHIR_JSON, pt.to_string()),
            None => error(StatusCode::NOT_FOUND, "not-found", &format!("Patient/{id} is not known.")),
        },
        (&Method::GET, ["Patient"]) => search(p, &query),
        (&Method::POST, ["Patient", "_search"]) if is_form || body.is_empty() => {
            let mut q = query;
            if !body.is_empty() {
                if !q.is_empty() {
                    q.push('&');
                }
                q.push_str(&String::from_utf8_lossy(&body));
            }
            search(p, &q)
        }
        (_, [t, ..]) if *t != "Patient" => {
            error(StatusCode::NOT_FOUND, "not-supported", &format!("The demo provider serves Patient only, not {t}."))
        }
        _ => error(StatusCode::BAD_REQUEST, "not-supported", "Unsupported interaction."),
    }
}

fn capability(p: &Provider) -> Value {
    let search_params: Vec<Value> = [
        ("_id", "token"),
        ("family", "string"),
        ("given", "string"),
        ("name", "string"),
        ("birthdate", "date"),
        ("gender", "token"),
        ("identifier", "token"),
    ]
    .iter()
    .map(|(name, ty)| json!({ "name": name, "type": ty }))
    .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": { "name": "fhirgate demo provider" },
        "implementation": { "description": "Synthetic R4 data", "url": p.base },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "resource": [{
                "type": "Patient",
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": search_params,
            }]
        }]
    })
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

fn search(p: &Provider, query: &str) -> Response<Body> {
    let mut filters: Vec<Filter> = Vec::new();
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    let mut kept = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b.to_owned(), Some(m.to_owned())),
            None => (name.clone(), None),
        };
        let alternatives: Vec<String> = value.split(',').map(str::to_owned).collect();
        match (base.as_str(), modifier.as_deref()) {
            ("_count", None) => match value.parse::<usize>() {
                Ok(c) => count = c.min(MAX_COUNT),
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid", "`_count` must be a number."),
            },
            ("_offset", None) => match value.parse::<usize>() {
                Ok(o) => offset = o,
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid", "`_offset` must be a number."),
            },
            ("_format" | "_pretty", _) => continue,
            ("_id", None) => filters.push(Box::new(move |pt| alternatives.iter().any(|a| pt["id"] == a.as_str()))),
            ("family" | "given" | "name", m) => {
                let how = match m {
                    None => StringMatch::StartsWith,
                    Some("contains") => StringMatch::Contains,
                    Some("exact") => StringMatch::Exact,
                    Some(other) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "not-supported",
                            &format!("Unsupported modifier `:{other}`."),
                        );
                    }
                };
                let part = if base == "name" { "any".to_owned() } else { base.clone() };
                filters.push(Box::new(move |pt| {
                    let parts = name_parts(pt, &part);
                    alternatives.iter().any(|a| parts.iter().any(|c| string_matches(c, a, how)))
                }));
            }
            ("birthdate", None) => {
                let mut tests = Vec::new();
                for a in &alternatives {
                    let (prefix, date) = match a.get(..2) {
                        Some(pre @ ("eq" | "ne" | "lt" | "le" | "gt" | "ge")) => (pre.to_owned(), a[2..].to_owned()),
                        _ => ("eq".to_owned(), a.clone()),
                    };
                    if !valid_date(&date) {
                        return error(StatusCode::BAD_REQUEST, "invalid", &format!("`{a}` is not a FHIR date."));
                    }
                    tests.push((prefix, date));
                }
                filters.push(Box::new(move |pt| {
                    let Some(b) = pt["birthDate"].as_str() else { return false };
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
                }));
            }
            ("gender", None) => {
                filters.push(Box::new(move |pt| alternatives.iter().any(|a| pt["gender"] == a.as_str())))
            }
            ("identifier", None) => filters.push(Box::new(move |pt| {
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
            })),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    &format!("Unknown or unsupported search parameter `{name}`."),
                );
            }
        }
        if base != "_offset" {
            kept.push((name, value));
        }
    }
    let matches: Vec<&Value> = p.patients.iter().filter(|pt| filters.iter().all(|f| f(pt))).collect();
    let total = matches.len();
    let page: Vec<&Value> = matches.iter().skip(offset).take(count).copied().collect();
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
        format!("{}/Patient?{}", p.base, ser.finish())
    };
    let mut links = vec![json!({ "relation": "self", "url": link(offset) })];
    if count > 0 && offset + count < total {
        links.push(json!({ "relation": "next", "url": link(offset + count) }));
    }
    if offset > 0 {
        links.push(json!({ "relation": "previous", "url": link(offset.saturating_sub(count)) }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": format!("search-{:016x}", fxhash(query)),
        "meta": { "lastUpdated": "2026-01-15T09:30:00Z" },
        "type": "searchset",
        "timestamp": "2026-01-15T09:30:00Z",
        "total": total,
        "link": links,
        "entry": page.iter().map(|pt| json!({
            "fullUrl": format!("{}/Patient/{}", p.base, pt["id"].as_str().unwrap_or_default()),
            "resource": pt,
            "search": { "mode": "match" }
        })).collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, FHIR_JSON, Bytes::from(bundle.to_string()))
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
