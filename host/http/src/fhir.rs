//! The FHIR faces, `/stu3` and `/dstu2`: discovery documents answered here
//! without a token, everything else through the request pipeline.

use std::sync::Arc;

use fhirgate_core::Version;
use fhirgate_core::failure::{Body, Failure, json_response};
use fhirgate_gateway::Services;
use fhirgate_gateway::capability::capability_statement;
use fhirgate_gateway::oauth::discovery;
use fhirgate_gateway::pipeline::{self, Ctx};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument as _;

/// Answers a request on `face`; `rest` is the path after `/{face}/`.
pub(crate) async fn serve(
    gw: &Arc<Services>,
    req: Request<Incoming>,
    face: Version,
    rest: &str,
    request_id: &str,
    public_base: String,
) -> Response<Body> {
    if rest == ".well-known/smart-configuration" {
        let body = discovery::smart_configuration(&public_base);
        return json_response(StatusCode::OK, "application/json", body.to_string());
    }
    if rest == "metadata" {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Failure::client(StatusCode::METHOD_NOT_ALLOWED, "Use GET for /metadata.").into_response(face);
        }
        let body = capability_statement(face, &public_base).to_string();
        return json_response(StatusCode::OK, face.content_type(), body);
    }
    let (parts, body) = req.into_parts();
    // Read only once the token is accepted; a body that cannot be read is
    // still an access, recorded by the pipeline.
    let body = crate::body::read_body(body, gw.limits().max_request_body_bytes, gw.limits());
    let ctx = Ctx {
        gw: gw.clone(),
        policy: gw.policy().load_full(),
        directory: gw.directory().snapshot(),
        face,
        public_base,
        request_id: request_id.to_owned(),
        arrived_ms: fhirgate_core::clock::now_millis(),
    };
    // Every line logged while the request is handled names it.
    let span = tracing::info_span!("request", request_id = %request_id);
    pipeline::handle(&ctx, &parts.method, rest, parts.uri.query(), &parts.headers, body).instrument(span).await
}
