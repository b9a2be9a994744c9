//! A routing module for the gateway's own tests: it tries the network
//! (`wasi:sockets`, which language runtimes import whether or not they use
//! it): a TCP connection to the loopback port its configuration names, a
//! UDP socket, a name lookup. The gateway links the interface and refuses
//! every use, so each attempt must fail. Never deploy it.

use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Claims, Denial, Request};

use fhirgate_guest_sdk::router::Target;

#[derive(serde::Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Config {
    port: u16,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Sockets;

impl fhirgate_guest_sdk::router::Guest for Sockets {
    fn route(_claims: Claims, _request: Request) -> Result<Target, Denial> {
        let config: Config = fhirgate_guest_sdk::config().map_err(|m| deny(500, "module-config", m))?;
        if TcpStream::connect(("127.0.0.1", config.port)).is_ok() {
            return Err(deny(500, "connected", "A TCP connection was made."));
        }
        if UdpSocket::bind("127.0.0.1:0").is_ok_and(|s| s.send_to(b"x", ("127.0.0.1", config.port)).is_ok()) {
            return Err(deny(500, "sent", "A UDP datagram was sent."));
        }
        if ("localhost", config.port).to_socket_addrs().is_ok_and(|mut a| a.next().is_some()) {
            return Err(deny(500, "looked-up", "A name was looked up."));
        }
        Err(deny(503, "no-network", "Every network attempt failed."))
    }
}

#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_router!(Sockets);
