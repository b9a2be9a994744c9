//! A routing module for the gateway's own tests: it opens a TCP connection,
//! so it imports `wasi:sockets`, which the gateway does not grant; the
//! gateway must refuse to load it. Never deploy it.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Claims, Denial, Request};

use fhirgate_guest_sdk::router::Target;

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Sockets;

impl fhirgate_guest_sdk::router::Guest for Sockets {
    fn route(_claims: Claims, _request: Request) -> Result<Target, Denial> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Err(deny(500, "connected", "A connection was made.")),
            Err(e) => Err(deny(500, "not-connected", e.to_string())),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_router!(Sockets);
