//! Request bodies, read up to a limit and within a deadline.

use std::time::Duration;

use bytes::Bytes;
use fhirgate_core::failure::Failure;
use fhirgate_gateway::config::HttpLimits;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// The body, up to `limit` bytes and within the configured body-read
/// timeout; a larger, slower or unreadable one is the client's error.
pub(crate) async fn read_body(body: Incoming, limit: usize, limits: &HttpLimits) -> Result<Bytes, Failure> {
    let deadline = Duration::from_secs(limits.body_read_timeout_seconds);
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Failure::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
        )),
        Ok(Err(_)) => Err(Failure::client(StatusCode::BAD_REQUEST, "The request body could not be read.")),
        Err(_) => Err(Failure::client(
            StatusCode::REQUEST_TIMEOUT,
            format!("The request body did not arrive within {} seconds.", deadline.as_secs()),
        )),
    }
}
