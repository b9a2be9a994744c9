//! Auditors' page: the access log searched by tenant, client, patient and
//! time range, newest first, a page at a time, and exported as a FHIR R4
//! `AuditEvent` Bundle. Auditors and operators only.
//!
//! - `GET /portal/access?tenant=&client=&patient=&since=&until=&after=`
//! - `GET /portal/access/export?…` (the same filters; at most 1000 records)

use askama::Template as _;
use http::{HeaderValue, Response, StatusCode, header};

use fhirgate_core::failure::{Body, json_response};
use fhirgate_gateway::access::{AccessCursor, AccessQuery, audit_event_bundle};
use fhirgate_store::accounts::Role;

use super::{Session, html, page, pages};

/// Records per page.
const PAGE: u32 = 50;

/// The search as the form gave it.
#[derive(Default)]
pub(super) struct Search {
    pub tenant: String,
    pub client: String,
    pub patient: String,
    pub since: String,
    pub until: String,
    pub after: String,
}

impl Search {
    fn from_query(query: Option<&str>) -> Search {
        let mut s = Search::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let v = v.trim().to_owned();
            match k.as_ref() {
                "tenant" => s.tenant = v,
                "client" => s.client = v,
                "patient" => s.patient = v,
                "since" => s.since = v,
                "until" => s.until = v,
                "after" => s.after = v,
                _ => {}
            }
        }
        s
    }

    /// The query string of this search (without the cursor).
    fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                [
                    ("tenant", &self.tenant),
                    ("client", &self.client),
                    ("patient", &self.patient),
                    ("since", &self.since),
                    ("until", &self.until),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty()),
            )
            .finish()
    }

    /// The store's query, or what is wrong with the form.
    fn query(&self, limit: u32) -> Result<AccessQuery, String> {
        let some = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
        let after = match self.after.as_str() {
            "" => None,
            a => Some(a.parse::<AccessCursor>().map_err(|_| "That page link is broken; search again.".to_owned())?),
        };
        Ok(AccessQuery {
            tenant: some(&self.tenant).map(|t| t.to_ascii_lowercase()),
            client: some(&self.client),
            patient: some(&self.patient),
            since_ms: instant(&self.since, "From")?,
            until_ms: instant(&self.until, "Until")?,
            limit: Some(limit),
            newest_first: true,
            after,
            ..AccessQuery::default()
        })
    }
}

/// Milliseconds of the form's time `text` (RFC 3339, a date, or
/// milliseconds); what is wrong with it, naming the `field`.
fn instant(text: &str, field: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    fhirgate_core::clock::parse_instant_ms(text).map(Some).map_err(|e| format!("{field}: {e}."))
}

impl Session<'_> {
    fn audits(&self) -> bool {
        self.user.roles.iter().any(|r| matches!(r, Role::Auditor | Role::Operator))
    }

    pub(super) async fn access(self, query: Option<&str>) -> Response<Body> {
        if !self.audits() {
            return page(StatusCode::FORBIDDEN, "The access log is for auditors and operators.".into());
        }
        let search = Search::from_query(query);
        let searched = !search.query_string().is_empty() || !search.after.is_empty();
        let (rows, error, next) = match search.query(PAGE) {
            Err(message) => (Vec::new(), Some(message), None),
            Ok(q) => {
                // What was recorded before this question is in the answer.
                self.portal.gw.access().flush().await;
                match self.portal.gw.access().query(&q).await {
                    Ok(records) => {
                        let next = (records.len() == PAGE as usize)
                            .then(|| records.last().map(|r| AccessCursor::of(r).to_string()))
                            .flatten();
                        (records, None, next)
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "portal: access log query failed");
                        return page(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "The access log is unavailable; try again shortly.".into(),
                        );
                    }
                }
            }
        };
        let rows = rows
            .into_iter()
            .map(|r| pages::AccessLine {
                at: rfc3339_ms(r.at_ms),
                request_id: r.request_id,
                part: r.part,
                client: r.client_id.unwrap_or_else(|| "—".into()),
                tenant: r.tenant_id.unwrap_or_else(|| "—".into()),
                provider: r.provider_id.unwrap_or_else(|| "—".into()),
                what: format!("{} {}", r.interaction, r.resource_type.unwrap_or_default()).trim().to_owned(),
                patient: r.patient_id.unwrap_or_else(|| "—".into()),
                status: r.status,
            })
            .collect();
        let base = search.query_string();
        let join = |extra: String| if base.is_empty() { extra } else { format!("{base}&{extra}") };
        let next = next.map(|c| {
            let cursor: String = form_urlencoded::byte_serialize(c.as_bytes()).collect();
            format!("/portal/access?{}", join(format!("after={cursor}")))
        });
        let export =
            if base.is_empty() { "/portal/access/export".into() } else { format!("/portal/access/export?{base}") };
        let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        let view = pages::AccessLog {
            search: &search,
            rows,
            error: error.as_deref(),
            next,
            export,
            searched,
            first: (!search.after.is_empty()).then(|| format!("/portal/access?{base}")),
        };
        match view.render() {
            Ok(t) => html(status, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    /// The search's records (at most 1000, newest first) as an `AuditEvent`
    /// Bundle, downloaded as a file.
    pub(super) async fn access_export(self, query: Option<&str>) -> Response<Body> {
        if !self.audits() {
            return page(StatusCode::FORBIDDEN, "The access log is for auditors and operators.".into());
        }
        let search = Search::from_query(query);
        let q = match search.query(1000) {
            Ok(q) => q,
            Err(message) => return page(StatusCode::BAD_REQUEST, message),
        };
        self.portal.gw.access().flush().await;
        match self.portal.gw.access().query(&q).await {
            Ok(records) => {
                tracing::info!(
                    target: "fhirgate::audit",
                    user = %self.user.username,
                    records = records.len(),
                    "access log exported"
                );
                let bundle = audit_event_bundle(&records, "fhirgate");
                let mut resp = json_response(StatusCode::OK, "application/fhir+json", bundle.to_string());
                resp.headers_mut().insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"access-log-auditevents.json\""),
                );
                resp
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "portal: access log export failed");
                page(StatusCode::SERVICE_UNAVAILABLE, "The access log is unavailable; try again shortly.".into())
            }
        }
    }
}

/// RFC 3339, UTC, to the millisecond.
fn rfc3339_ms(ms: i64) -> String {
    fhirgate_core::clock::format_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_rfc_3339_or_as_dates() {
        assert_eq!(instant("", "From"), Ok(None));
        assert_eq!(instant("1970-01-01T00:00:01Z", "From"), Ok(Some(1000)));
        assert_eq!(instant("1970-01-01T01:00:01+01:00", "From"), Ok(Some(1000)));
        assert_eq!(instant("1970-01-02", "From"), Ok(Some(86_400_000)));
        let refused = instant("yesterday", "Until").unwrap_err();
        assert!(refused.starts_with("Until: `yesterday` is not a time"), "{refused}");
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
    }
}
