//! What a policy module is to the rest of the gateway: the role it plays,
//! and how a call can fail without answering (a fault, as opposed to a
//! module's ordinary "no", which is a denial value).

use std::fmt;

/// The three roles a module can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    TokenValidation,
    Routing,
    Shaping,
}

impl Role {
    /// The role's name, as policies, metrics and logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::TokenValidation => "token-validation",
            Role::Routing => "routing",
            Role::Shaping => "shaping",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A call that did not return a value: a bug in the module, not an answer.
#[derive(Debug, thiserror::Error)]
pub enum GuestFault {
    #[error("the module ran past its {0} ms time limit")]
    Timeout(u64),
    #[error("the module exceeded its memory limit")]
    MemoryLimit,
    /// The detail (trap code, backtrace) is for the log, not the client.
    #[error("the module trapped")]
    Trap(String),
    #[error("the module does not export the {0} interface")]
    NotExported(Role),
    /// Every instance slot is in use: the gateway is overloaded, the module
    /// is not at fault.
    #[error("the gateway is busy")]
    Busy,
}

impl GuestFault {
    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestFault::Timeout(_) => "timeout",
            GuestFault::MemoryLimit => "memory",
            GuestFault::Trap(_) => "trap",
            GuestFault::NotExported(_) => "not-exported",
            GuestFault::Busy => "busy",
        }
    }
}
