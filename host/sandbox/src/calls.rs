//! The calls of the role exports, as values: what the sandbox's instances
//! and the native twins both answer.

use super::bindings::{routing, shaping, types};
use fhirgate_core::modules::{GuestFault, Role};

/// What a module's call comes to: an answer, a denial, or a fault.
pub type Outcome<T> = Result<Result<T, types::Denial>, GuestFault>;

/// One call of a role's export, with its arguments.
#[derive(Clone, Copy)]
pub enum Ask<'a> {
    Validate { token: &'a str, request: &'a types::Request },
    Route { claims: &'a types::Claims, request: &'a types::Request },
    ShapeRequest { exchange: &'a shaping::Exchange, request: &'a shaping::UpstreamRequest },
    ShapeResponse { exchange: &'a shaping::Exchange, status: u16, body: &'a [u8] },
}

impl Ask<'_> {
    pub fn role(&self) -> Role {
        match self {
            Ask::Validate { .. } => Role::TokenValidation,
            Ask::Route { .. } => Role::Routing,
            Ask::ShapeRequest { .. } | Ask::ShapeResponse { .. } => Role::Shaping,
        }
    }
}

/// What a call answers, by kind.
#[derive(Debug)]
pub enum Answer {
    Claims(types::Claims),
    Target(routing::Target),
    Request(shaping::UpstreamRequest),
    Shaped(shaping::Shaped),
}
