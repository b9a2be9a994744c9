//! A `batch` Bundle: every entry authorised by the one token, then parsed,
//! routed, shaped, forwarded and shaped back through the same phases as a
//! single request, several at a time; one entry's failure is that entry's
//! answer only.

use std::sync::Arc;

use bytes::Bytes;
use fhirgate_core::failure::{Body, Failure, json_response};
use fhirgate_sandbox::Role;
use fhirgate_sandbox::bindings::types::{Claims, Header, Interaction, Request};
use futures_util::StreamExt as _;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::Value;
use serde_json::value::RawValue;

use super::audit::{Access, Audit};
use super::parse::{interaction_name, page_cursor, parse, patient_of};
use super::{Ctx, broker, log_failure};

/// Entries one batch may hold. The app asks for a handful of resources at a
/// time; 50 leaves room while bounding the work one request can cause.
pub(super) const MAX_BATCH_ENTRIES: usize = 50;
/// Batch entries forwarded at once, so one batch cannot monopolise a provider.
pub(super) const BATCH_PARALLELISM: usize = 8;
/// A `batch` Bundle: every entry authorised by the one token, then routed,
/// forwarded and shaped on its own, several at a time; one entry's failure is
/// that entry's response only.
pub(super) async fn batch(ctx: &Ctx, claims: &Arc<Claims>, request: &Request) -> Result<Response<Body>, Failure> {
    let body = request.body.as_deref().unwrap_or_default();
    let bundle: Value = serde_json::from_slice(body)
        .map_err(|_| Failure::client(StatusCode::BAD_REQUEST, "The body is not a JSON Bundle."))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(Failure::client(StatusCode::BAD_REQUEST, "The body is not a Bundle."));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => {}
        Some("transaction") => {
            return Err(Failure::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Transactions are not supported: this gateway only reads. Send a batch of GET entries.",
            ));
        }
        _ => return Err(Failure::client(StatusCode::BAD_REQUEST, "Only `batch` Bundles can be posted here.")),
    }
    let entries = match bundle {
        Value::Object(mut b) => match b.remove("entry") {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(Failure::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("A batch may hold at most {MAX_BATCH_ENTRIES} entries."),
        ));
    }
    // Each entry is a task of its own, so entries use every core (shaping
    // is CPU work), at most `BATCH_PARALLELISM` at a time. A batch the
    // client gives up on starts no more entries; one started runs to its end,
    // so what it read from the provider is in the access log.
    let pending: Vec<_> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let (ctx, claims, headers) = (ctx.clone(), claims.clone(), request.headers.clone());
            async move {
                let part = i as u32 + 1;
                let task = tokio::spawn({
                    let (ctx, claims) = (ctx.clone(), claims.clone());
                    async move { batch_entry(&ctx, &claims, headers, part, &e).await }
                });
                match task.await {
                    Ok(entry) => entry,
                    Err(_) => entry_failed(&ctx, &claims, part).await,
                }
            }
        })
        .collect();
    let entry: Vec<BatchEntry> = futures_util::stream::iter(pending).buffered(BATCH_PARALLELISM).collect().await;
    let out =
        BatchResponse { resource_type: "Bundle", id: uuid::Uuid::new_v4().to_string(), kind: "batch-response", entry };
    let body = serde_json::to_string(&out).map_err(|_| Failure::gateway("The batch answer could not be written."))?;
    Ok(json_response(StatusCode::OK, ctx.face.content_type(), body))
}

pub(super) async fn batch_entry(
    ctx: &Ctx,
    claims: &Claims,
    headers: Vec<Header>,
    part: u32,
    entry: &Value,
) -> BatchEntry {
    let access = Access::of(ctx, part);
    let mut audit = Audit::default();
    let mut sub_request: Option<(Interaction, Option<String>)> = None;
    let result = async {
        let req = entry
            .get("request")
            .ok_or_else(|| Failure::client(StatusCode::BAD_REQUEST, "The entry has no request."))?;
        let method = req.get("method").and_then(Value::as_str).unwrap_or("");
        if method != "GET" {
            return Err(Failure::client(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only GET entries are allowed: this gateway only reads.",
            ));
        }
        let url = req
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::client(StatusCode::BAD_REQUEST, "The entry's request has no url."))?;
        let gateway_base = ctx.gateway_base();
        let relative =
            url.strip_prefix(&gateway_base).map(|r| r.trim_start_matches('/')).unwrap_or(url).trim_start_matches('/');
        if relative.contains("://") {
            return Err(Failure::client(StatusCode::BAD_REQUEST, "Entry urls must be relative to this base."));
        }
        let (path, query) = match relative.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (relative, None),
        };
        let mut sub = parse(ctx, &Method::GET, path.trim_end_matches('/'), query, &HeaderMap::new(), Bytes::new())?;
        sub.headers = headers;
        sub_request = Some((sub.interaction, sub.resource_type.clone()));
        audit.patient = patient_of(&sub);
        if page_cursor(&sub).is_some() || sub.interaction == Interaction::Batch {
            return Err(Failure::client(StatusCode::BAD_REQUEST, "Batch entries must be reads or searches."));
        }
        let (status, body) = broker(ctx, claims, &sub, &mut audit).await?;
        // Checked, not parsed into values: the batch answer carries it as it is.
        let resource = serde_json::from_slice::<&RawValue>(&body)
            .map(RawValue::to_owned)
            .map_err(|_| Failure::module(Role::Shaping, "it answered a body that is not JSON"))?;
        Ok((status, resource))
    }
    .await;
    let mut provider_fault = false;
    let (status, resource) = match result {
        Ok(r) => r,
        Err(f) => {
            log_failure(ctx, &f);
            provider_fault = f.fault == fhirgate_core::failure::Fault::Provider;
            let severity = if f.status.is_server_error() { "fatal" } else { "error" };
            (f.status, outcome_raw(severity, f.issue, &f.message))
        }
    };
    let (interaction, resource_type) = sub_request.unwrap_or((Interaction::Other, None));
    audit.client_id = Some(claims.client_id.clone());
    audit.tenant = Some(claims.tenant_id.clone());
    audit.resource_type = resource_type;
    let record = access.record(interaction_name(interaction), audit, status.as_u16(), provider_fault);
    // Committed with the request's own record, which the answer waits for.
    ctx.gw.access().queue(record).await;
    BatchEntry {
        full_url: full_url(&ctx.gateway_base(), &resource),
        resource,
        response: EntryResponse { status: status_line(status) },
    }
}

/// A `batch-response` Bundle.
#[derive(serde::Serialize)]
pub(super) struct BatchResponse {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    entry: Vec<BatchEntry>,
}

/// One entry of a `batch-response`: the shaped resource copied in as the
/// module answered it.
#[derive(serde::Serialize)]
pub(super) struct BatchEntry {
    #[serde(rename = "fullUrl", skip_serializing_if = "Option::is_none")]
    full_url: Option<String>,
    resource: Box<RawValue>,
    response: EntryResponse,
}

#[derive(serde::Serialize)]
pub(super) struct EntryResponse {
    status: String,
}

impl BatchEntry {
    fn failed(status: StatusCode, message: &str) -> BatchEntry {
        BatchEntry {
            full_url: None,
            resource: outcome_raw("fatal", "exception", message),
            response: EntryResponse { status: status_line(status) },
        }
    }
}

pub(super) fn status_line(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")).trim_end().to_owned()
}

/// An OperationOutcome as JSON text.
pub(super) fn outcome_raw(severity: &str, code: &str, message: &str) -> Box<RawValue> {
    let text = fhirgate_core::fhir::outcome(severity, code, message).to_string();
    RawValue::from_string(text).unwrap_or_else(|_| unreachable!("a Value's text is JSON"))
}

/// The answer and the access record of an entry whose task failed (a fault
/// of the gateway's: nothing on input makes one).
pub(super) async fn entry_failed(ctx: &Ctx, claims: &Claims, part: u32) -> BatchEntry {
    tracing::error!(request_id = %ctx.request_id, part, "a batch entry's task failed");
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    let audit =
        Audit { client_id: Some(claims.client_id.clone()), tenant: Some(claims.tenant_id.clone()), ..Audit::default() };
    let record = Access::of(ctx, part).record(interaction_name(Interaction::Other), audit, status.as_u16(), false);
    ctx.gw.access().queue(record).await;
    BatchEntry::failed(status, "The entry could not be completed.")
}

pub(super) fn full_url(base: &str, resource: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "resourceType", borrow)]
        resource_type: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    let head: Head = serde_json::from_str(resource.get()).ok()?;
    let (rt, id) = (head.resource_type?, head.id?);
    (rt != "OperationOutcome").then(|| format!("{base}/{rt}/{id}"))
}

#[cfg(test)]
mod tests {
    use crate::access::AccessQuery;
    use fhirgate_core::Version;
    use http_body_util::BodyExt as _;
    use serde_json::json;

    use super::super::testing;
    use super::*;

    #[tokio::test]
    async fn each_entry_is_answered_and_recorded_on_its_own() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let bundle = json!({
            "resourceType": "Bundle", "type": "batch",
            "entry": [
                { "request": { "method": "PUT", "url": "Patient/p1" } },
                { "request": { "method": "GET", "url": "https://elsewhere.example/fhir/Patient/p1" } },
                { "request": { "method": "GET", "url": "Patient/not an id" } },
                { "request": { "method": "GET" } },
            ],
        });
        let request = parse(&ctx, &Method::POST, "", None, &HeaderMap::new(), Bytes::from(bundle.to_string())).unwrap();
        let claims = Arc::new(testing::claims());
        let response = batch(&ctx, &claims, &request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["type"], "batch-response");
        let statuses: Vec<&str> =
            answer["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["405 Method Not Allowed", "400 Bad Request", "400 Bad Request", "400 Bad Request"]);
        assert!(
            answer["entry"].as_array().unwrap().iter().all(|e| e["resource"]["resourceType"] == "OperationOutcome")
        );

        ctx.gw.access().flush().await;
        let q = AccessQuery { request_id: Some(ctx.request_id.clone()), ..AccessQuery::default() };
        let mut parts: Vec<u32> = ctx.gw.access().query(&q).await.unwrap().iter().map(|r| r.part).collect();
        parts.sort();
        assert_eq!(parts, [1, 2, 3, 4], "one record per entry");
    }

    #[tokio::test]
    async fn only_batches_of_reads_are_taken() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let claims = Arc::new(testing::claims());
        let post = |body: Value| parse(&ctx, &Method::POST, "", None, &HeaderMap::new(), Bytes::from(body.to_string()));
        let transaction = post(json!({ "resourceType": "Bundle", "type": "transaction" })).unwrap();
        assert_eq!(batch(&ctx, &claims, &transaction).await.unwrap_err().status, StatusCode::UNPROCESSABLE_ENTITY);
        let too_many = json!({ "resourceType": "Bundle", "type": "batch",
            "entry": vec![json!({ "request": { "method": "GET", "url": "Patient/p1" } }); MAX_BATCH_ENTRIES + 1] });
        assert_eq!(
            batch(&ctx, &claims, &post(too_many).unwrap()).await.unwrap_err().status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let patient = post(json!({ "resourceType": "Patient" })).unwrap();
        assert_eq!(batch(&ctx, &claims, &patient).await.unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
