//! Phase 1, parse: method, path and query (and a `_search` form body) into
//! the request record modules see. First, so that no module ever sees a
//! malformed request.

use bytes::Bytes;
use fhirgate_core::failure::Failure;
use fhirgate_sandbox::bindings::types::{Header, Interaction, Param, Request};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, StatusCode};

use super::Ctx;
use crate::paging::PAGE_PARAM;

/// Query parameters one request may carry.
pub(super) const MAX_PARAMS: usize = 64;

/// The patient a request is about, when the request says: a Patient read,
/// a Patient search by `_id`, or a search by `patient`/`subject`.
pub(super) fn patient_of(r: &Request) -> Option<String> {
    let id = |v: &str| {
        let v = v.strip_prefix("Patient/").unwrap_or(v);
        is_id(v).then(|| v.to_owned())
    };
    match (r.interaction, r.resource_type.as_deref()) {
        (Interaction::Read | Interaction::Vread, Some("Patient")) => r.resource_id.clone(),
        (Interaction::Search, Some("Patient")) => r.params.iter().find(|p| p.name == "_id").and_then(|p| id(&p.value)),
        (Interaction::Search, Some(_)) => {
            r.params.iter().find(|p| p.name == "patient" || p.name == "subject").and_then(|p| id(&p.value))
        }
        _ => None,
    }
}

pub(super) fn interaction_name(i: Interaction) -> &'static str {
    match i {
        Interaction::Read => "read",
        Interaction::Vread => "vread",
        Interaction::Search => "search",
        Interaction::Batch => "batch",
        Interaction::Capabilities => "capabilities",
        Interaction::Other => "other",
    }
}

/// A page link's cursor, when the request follows one.
pub(super) fn page_cursor(request: &Request) -> Option<&str> {
    if request.interaction != Interaction::Search || request.resource_type.is_some() {
        return None;
    }
    request.params.iter().find(|p| p.name == PAGE_PARAM).map(|p| p.value.as_str())
}

/// Phase 1: the request as modules see it.
pub(super) fn parse(
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request, Failure> {
    let segments: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    let bad_type = |t: &str| Failure::client(StatusCode::BAD_REQUEST, format!("`{}` is not a resource type.", clip(t)));
    let mut params = query.map(parse_params).transpose()?.unwrap_or_default();
    if query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")) {
        return Err(Failure::bearer(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "Send the access token in the Authorization header, not the URL.",
        ));
    }
    let (interaction, resource_type, resource_id, body) = match (method, segments.as_slice()) {
        (&Method::POST, []) => (Interaction::Batch, None, None, Some(body.to_vec())),
        (&Method::GET, [t]) if is_type(t) => (Interaction::Search, Some(*t), None, None),
        (&Method::GET, [t, "_search"]) if is_type(t) => (Interaction::Search, Some(*t), None, None),
        (&Method::POST, [t, "_search"]) if is_type(t) => {
            let form = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
            if !form && !body.is_empty() {
                return Err(Failure::client(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "A _search body must be application/x-www-form-urlencoded.",
                ));
            }
            let text = std::str::from_utf8(&body)
                .map_err(|_| Failure::client(StatusCode::BAD_REQUEST, "The _search body is not valid UTF-8."))?;
            params.extend(parse_params(text)?);
            if params.len() > MAX_PARAMS {
                return Err(Failure::client(StatusCode::BAD_REQUEST, "Too many search parameters."));
            }
            (Interaction::Search, Some(*t), None, None)
        }
        (&Method::GET, [t, id]) if is_type(t) => {
            if !is_id(id) {
                return Err(Failure::client(StatusCode::BAD_REQUEST, "The resource id is not a valid FHIR id."));
            }
            (Interaction::Read, Some(*t), Some(*id), None)
        }
        (&Method::GET, [t, id, "_history", vid]) if is_type(t) && is_id(id) && is_id(vid) => {
            (Interaction::Vread, Some(*t), Some(*id), None)
        }
        (&Method::GET, []) if params.len() == 1 && params[0].name == PAGE_PARAM => {
            (Interaction::Search, None, None, None)
        }
        (&Method::GET, []) => {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                "Search across all resource types is not supported; search a resource type.",
            ));
        }
        (m, [t, ..]) if !is_type(t) && *m == Method::GET => return Err(bad_type(t)),
        (&Method::PUT | &Method::DELETE | &Method::PATCH | &Method::POST, _) => {
            return Err(Failure::client(
                StatusCode::METHOD_NOT_ALLOWED,
                "This gateway is read-only: only reads, searches and read batches are allowed.",
            ));
        }
        _ => return Err(Failure::client(StatusCode::NOT_FOUND, "No such FHIR interaction on this server.")),
    };
    let headers = headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "cookie" | "proxy-authorization"))
        .filter_map(|(name, value)| {
            Some(Header { name: name.as_str().to_owned(), value: value.to_str().ok()?.to_owned() })
        })
        .collect();
    Ok(Request {
        request_id: ctx.request_id.clone(),
        method: method.as_str().to_owned(),
        fhir_version: fhirgate_sandbox::wit_version(ctx.face),
        interaction,
        resource_type: resource_type.map(str::to_owned),
        resource_id: resource_id.map(str::to_owned),
        path: rest.to_owned(),
        params,
        headers,
        body,
    })
}

pub(super) fn parse_params(text: &str) -> Result<Vec<Param>, Failure> {
    let params: Vec<Param> = form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| Param { name: k.into_owned(), value: v.into_owned() })
        .collect();
    if params.len() > MAX_PARAMS {
        return Err(Failure::client(StatusCode::BAD_REQUEST, "Too many search parameters."));
    }
    if let Some(p) = params.iter().find(|p| p.name.is_empty()) {
        return Err(Failure::client(
            StatusCode::BAD_REQUEST,
            format!("A parameter has no name (value `{}`).", clip(&p.value)),
        ));
    }
    Ok(params)
}

/// A resource type: an upper-case letter, then letters (FHIR names).
pub(super) fn is_type(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=64).contains(&b.len()) && b[0].is_ascii_uppercase() && b.iter().all(u8::is_ascii_alphabetic)
}

/// A FHIR id: 1–64 of `[A-Za-z0-9-.]`.
pub(super) fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

pub(super) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhirgate_core::Version;

    use super::super::testing;

    #[test]
    fn types_and_ids() {
        assert!(is_type("Patient"));
        assert!(!is_type("patient"));
        assert!(!is_type("Pat1ent"));
        assert!(is_id("abc-1.2"));
        assert!(!is_id("a/b"));
        assert!(!is_id(&"x".repeat(65)));
    }

    #[tokio::test]
    async fn a_read_a_search_and_a_form_search_become_the_request_modules_see() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let read = parse(&ctx, &Method::GET, "Patient/p-1", None, &HeaderMap::new(), Bytes::new()).unwrap();
        assert_eq!(read.interaction, Interaction::Read);
        assert_eq!((read.resource_type.as_deref(), read.resource_id.as_deref()), (Some("Patient"), Some("p-1")));
        assert_eq!(patient_of(&read).as_deref(), Some("p-1"));

        let mut form = HeaderMap::new();
        form.insert(CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded"));
        form.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer secret"));
        let body = Bytes::from_static(b"given=hugh&family=chau");
        let search = parse(&ctx, &Method::POST, "Patient/_search", Some("_count=5"), &form, body).unwrap();
        assert_eq!(search.interaction, Interaction::Search);
        let params: Vec<(&str, &str)> = search.params.iter().map(|p| (p.name.as_str(), p.value.as_str())).collect();
        assert_eq!(params, [("_count", "5"), ("given", "hugh"), ("family", "chau")]);
        // Credentials never reach a module.
        assert!(search.headers.iter().all(|h| h.name != "authorization"), "{:?}", search.headers);

        let by_patient =
            parse(&ctx, &Method::GET, "Observation", Some("patient=Patient/p-2"), &HeaderMap::new(), Bytes::new());
        assert_eq!(patient_of(&by_patient.unwrap()).as_deref(), Some("p-2"));
    }

    #[tokio::test]
    async fn malformed_requests_are_refused_before_any_module() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Dstu2);
        let refused = |method: Method, rest: &str, query: Option<&str>, headers: HeaderMap, body: &'static [u8]| {
            parse(&ctx, &method, rest, query, &headers, Bytes::from_static(body)).unwrap_err()
        };
        let f = refused(Method::GET, "Patient/a b", None, HeaderMap::new(), b"");
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused(Method::GET, "patient", None, HeaderMap::new(), b"").status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refused(Method::PUT, "Patient/p1", None, HeaderMap::new(), b"{}").status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(refused(Method::GET, "", None, HeaderMap::new(), b"").status, StatusCode::BAD_REQUEST);
        let f = refused(Method::GET, "Patient", Some("access_token=abc"), HeaderMap::new(), b"");
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        let f = refused(Method::POST, "Patient/_search", None, HeaderMap::new(), b"{\"json\":1}");
        assert_eq!(f.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let many: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=x&")).collect();
        assert_eq!(refused(Method::GET, "Patient", Some(&many), HeaderMap::new(), b"").status, StatusCode::BAD_REQUEST);
    }
}
