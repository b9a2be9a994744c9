//! Every failure is classified here, once: whose fault it is, the HTTP
//! status, and how it is told to the client — an OAuth error JSON at the token
//! endpoint, an RFC 6750 `WWW-Authenticate` challenge for bearer errors, or an
//! OperationOutcome in the client's FHIR version.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::fhir::{Version, outcome};
use crate::modules::{GuestFault, Role};

/// The body of every answer the gateway writes: whole, in memory.
pub type Body = Full<Bytes>;

/// Whose fault a failure is; it decides the status class and the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong (4xx).
    Client,
    /// The provider failed or misbehaved (502/503/504).
    Provider,
    /// The gateway itself failed (500/503).
    Gateway,
    /// A policy module trapped, timed out or answered nonsense (500/502).
    Module,
}

/// A failure on a FHIR face.
#[derive(Debug, Clone)]
pub struct Failure {
    pub fault: Fault,
    pub status: StatusCode,
    /// IssueType code of the OperationOutcome.
    pub issue: &'static str,
    pub message: String,
    /// RFC 6750 error code, when this is a bearer-token failure.
    pub bearer_error: Option<String>,
    pub retry_after: Option<u64>,
}

impl Failure {
    fn new(fault: Fault, status: StatusCode, issue: &'static str, message: impl Into<String>) -> Self {
        Failure { fault, status, issue, message: message.into(), bearer_error: None, retry_after: None }
    }

    pub fn client(status: StatusCode, message: impl Into<String>) -> Self {
        let issue = match status {
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_ACCEPTABLE => "not-supported",
            StatusCode::PAYLOAD_TOO_LARGE => "too-long",
            StatusCode::FORBIDDEN => "forbidden",
            _ => "invalid",
        };
        Failure::new(Fault::Client, status, issue, message)
    }

    /// A bearer-token failure (RFC 6750 §3.1): no token, or one refused.
    pub fn bearer(status: StatusCode, error: Option<&str>, message: impl Into<String>) -> Self {
        let issue = if status == StatusCode::FORBIDDEN { "forbidden" } else { "login" };
        let mut f = Failure::new(Fault::Client, status, issue, message);
        f.bearer_error = error.map(str::to_owned);
        f
    }

    pub fn provider_unreachable(message: impl Into<String>) -> Self {
        Failure::new(Fault::Provider, StatusCode::BAD_GATEWAY, "transient", message)
    }

    pub fn provider_timeout(message: impl Into<String>) -> Self {
        Failure::new(Fault::Provider, StatusCode::GATEWAY_TIMEOUT, "timeout", message)
    }

    pub fn provider_bad_answer(message: impl Into<String>) -> Self {
        Failure::new(Fault::Provider, StatusCode::BAD_GATEWAY, "exception", message)
    }

    /// The provider's circuit breaker is open: 503 with `Retry-After`, so
    /// the app backs off instead of piling onto a failing hospital.
    pub fn provider_circuit_open(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut f = Failure::new(Fault::Provider, StatusCode::SERVICE_UNAVAILABLE, "transient", message);
        f.retry_after = Some(retry_after_secs.max(1));
        f
    }

    pub fn gateway(message: impl Into<String>) -> Self {
        Failure::new(Fault::Gateway, StatusCode::INTERNAL_SERVER_ERROR, "exception", message)
    }

    /// A module that trapped, timed out, or answered outside its contract.
    /// Authentication and routing fail closed: the request is refused.
    pub fn module(role: Role, message: impl Into<String>) -> Self {
        Failure::new(
            Fault::Module,
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("The {role} module failed: {}", message.into()),
        )
    }

    pub fn from_fault(role: Role, fault: &GuestFault) -> Self {
        if matches!(fault, GuestFault::Busy) {
            let mut f = Failure::new(
                Fault::Gateway,
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "The gateway is busy; try again shortly.",
            );
            f.retry_after = Some(1);
            return f;
        }
        let mut f = Failure::module(role, fault.to_string());
        if matches!(fault, GuestFault::Timeout(_)) {
            f.issue = "timeout";
        }
        f
    }

    /// A module's denial: an answer, relayed with its status. A status outside
    /// 400–599 is the module's bug and becomes a module fault.
    pub fn denial(role: Role, status: u16, code: &str, message: &str) -> Self {
        let Ok(status) = StatusCode::from_u16(status) else {
            return Failure::module(role, format!("denied with invalid status {status}"));
        };
        if !(status.is_client_error() || status.is_server_error()) {
            return Failure::module(role, format!("denied with non-error status {status}"));
        }
        if role == Role::TokenValidation {
            // A validator's 4xx is a verdict on the token; a 5xx means the
            // validator could not judge, which fails closed as a module fault.
            if status.is_client_error() {
                return Failure::bearer(status, Some(code), message);
            }
            return Failure::module(role, message.to_owned());
        }
        let fault = if status.is_client_error() { Fault::Client } else { Fault::Module };
        let issue = match status {
            StatusCode::NOT_IMPLEMENTED | StatusCode::NOT_ACCEPTABLE | StatusCode::METHOD_NOT_ALLOWED => {
                "not-supported"
            }
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::BAD_GATEWAY => "exception",
            s if s.is_client_error() => "invalid",
            _ => "exception",
        };
        let fault = if status == StatusCode::BAD_GATEWAY { Fault::Provider } else { fault };
        Failure::new(fault, status, issue, message.to_owned())
    }

    /// The answer on a FHIR face of version `face`.
    pub fn into_response(self, face: Version) -> Response<Body> {
        let severity = if self.status.is_server_error() { "fatal" } else { "error" };
        let body = outcome(severity, self.issue, &self.message);
        let mut resp = json_response(self.status, face.content_type(), body.to_string());
        let headers = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED || self.bearer_error.is_some() {
            headers.insert(WWW_AUTHENTICATE, bearer_challenge(self.bearer_error.as_deref(), &self.message));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// `Bearer realm="fhirgate"[, error="…", error_description="…"]`. The
/// description is reduced to characters RFC 6750 allows in it.
fn bearer_challenge(error: Option<&str>, description: &str) -> HeaderValue {
    let mut v = String::from("Bearer realm=\"fhirgate\"");
    if let Some(e) = error {
        let e: String = e.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let d: String = description.chars().filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')).collect();
        v.push_str(&format!(", error=\"{e}\", error_description=\"{d}\""));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"fhirgate\""))
}

/// A token endpoint failure, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Client authentication failed. `basic` records whether the client used
    /// HTTP Basic, which makes the answer a 401 with `WWW-Authenticate: Basic`.
    #[error("Client authentication failed.")]
    InvalidClient { basic: bool },
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("The grant type is not supported; use client_credentials.")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    /// The server could not answer now (store or signing failure).
    #[error("The server cannot issue tokens right now; retry later.")]
    TemporarilyUnavailable,
    /// Too many failed authentications; retry after this many seconds.
    #[error("Too many failed attempts; retry later.")]
    Throttled(u64),
}

impl OAuthError {
    /// The `error` code of the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            // RFC 6749 has no code for it; this is the one most clients know.
            OAuthError::Throttled(_) => "slow_down",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// The token endpoint's answer to an [`OAuthError`] (RFC 6749 §5.2).
pub fn oauth_error_response(err: &OAuthError) -> Response<Body> {
    let status = match err {
        OAuthError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
        OAuthError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = json!({ "error": err.code(), "error_description": err.to_string() });
    let mut resp = no_store(json_response(status, "application/json", body.to_string()));
    if let OAuthError::Throttled(secs) = err {
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(*secs));
    }
    if let OAuthError::InvalidClient { basic } = err {
        let challenge = if *basic {
            "Basic realm=\"fhirgate\", charset=\"UTF-8\""
        } else {
            // §5.2 asks for a challenge matching the scheme used; a client that
            // sent credentials in the body is told Basic is also accepted.
            "Basic realm=\"fhirgate\""
        };
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    resp
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// A JSON response.
pub fn json_response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
