//! Request bodies, read up to a limit.

use bytes::Bytes;
use fhirgate_core::failure::Failure;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// The body, up to `limit` bytes; a larger or unreadable one is the
/// client's error.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Failure::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
        )),
        Err(_) => Err(Failure::client(StatusCode::BAD_REQUEST, "The request body could not be read.")),
    }
}
