//! A routing module for the gateway's own tests: it opens a TCP connection,
//! so it imports `wasi:sockets`, which the gateway does not grant; the
//! gateway must refuse to load it. Never deploy it.

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Claims, Denial, Request};

use exports::fhirgate::policy::routing::Target;

wit_bindgen::generate!({
    world: "router",
    path: "../../../wit",
    with: {
        "fhirgate:policy/types@0.1.0": fhirgate_guest_sdk::types,
        "fhirgate:policy/host@0.1.0": fhirgate_guest_sdk::host,
        "fhirgate:policy/issuer@0.1.0": fhirgate_guest_sdk::issuer,
        "fhirgate:policy/crypto@0.1.0": fhirgate_guest_sdk::crypto,
        "fhirgate:policy/directory@0.1.0": fhirgate_guest_sdk::directory,
        "fhirgate:policy/upstream@0.1.0": fhirgate_guest_sdk::upstream,
    },
});

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Sockets;

impl exports::fhirgate::policy::routing::Guest for Sockets {
    fn route(_claims: Claims, _request: Request) -> Result<Target, Denial> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Err(deny(500, "connected", "A connection was made.")),
            Err(e) => Err(deny(500, "not-connected", e.to_string())),
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(Sockets);
