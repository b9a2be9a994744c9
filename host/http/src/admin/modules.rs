//! Policy activation for operators: what serves, reloads, uploads and
//! rollback.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::json;

use fhirgate_core::failure::Body;
use fhirgate_gateway::activation::Direction;
use fhirgate_gateway::services::Services;

use super::{answer, problem, query_param};

/// `GET /admin/modules` (what serves, what it replaced, the last policy
/// refused), `POST /admin/modules/reload` (load the policy file now),
/// `PUT /admin/modules/{role}?name=&sha256=` (a module's bytes: kept, named
/// in the policy file, activated), `POST /admin/modules/rollback` (back one
/// step; again for the one before) and `POST /admin/modules/forward` (undo a
/// rollback).
pub(super) async fn endpoint(
    gw: &Services,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &Bytes,
) -> Option<Response<Body>> {
    let ["modules", rest @ ..] = segments else { return None };
    let Some(activation) = gw.activation() else {
        return Some(problem(StatusCode::NOT_FOUND, "This gateway does not watch a policy file."));
    };
    Some(match (method, rest) {
        (&Method::GET, []) => answer(StatusCode::OK, json!(activation.status(&gw.served()))),
        (&Method::POST, ["reload"]) => match activation.reload(&gw.served()).await {
            Ok(status) => answer(StatusCode::OK, json!(status)),
            Err(rejection) => answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": "The policy was not activated; the active one keeps serving.", "rejection": rejection }),
            ),
        },
        (&Method::PUT, [role]) => {
            let name = query_param(query, "name").unwrap_or_else(|| (*role).to_owned());
            let sha256 = query_param(query, "sha256");
            match activation.upload(&gw.served(), role, &name, body.clone(), sha256.as_deref()).await {
                Ok(status) => answer(StatusCode::OK, json!(status)),
                Err(fhirgate_gateway::activation::UploadError::Invalid(message)) => {
                    problem(StatusCode::BAD_REQUEST, message)
                }
                Err(fhirgate_gateway::activation::UploadError::Refused(rejection)) => answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "error": "The module was not activated; the active one keeps serving.", "rejection": rejection }),
                ),
            }
        }
        (&Method::POST, [way @ ("rollback" | "forward")]) => {
            let direction = if *way == "rollback" { Direction::Back } else { Direction::Forward };
            match activation.step(&gw.served(), direction).await {
                Ok(status) => answer(StatusCode::OK, json!(status)),
                Err(message) => problem(StatusCode::CONFLICT, message),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "Unknown modules endpoint."),
    })
}
