//! Native twins: a module's own code compiled into the host and answering
//! in its place, behind the same role calls, limits aside. They exist to
//! measure what the sandbox costs against the same code run natively (the
//! compare benchmark's system E). A runtime uses them only when told to
//! ([`crate::Runtime::run_natively`]), and only for the digests its
//! [`Twins`] knows: the gateway's own built-in modules, never a partner's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::bindings::types::Denial;
use crate::calls::{Answer, Ask};
use crate::state::CallContext;

/// A future a twin answers with.
pub type Answering<'a> = Pin<Box<dyn Future<Output = Result<Answer, Denial>> + Send + 'a>>;

/// One module's code, compiled natively.
pub trait Twin: Send + Sync {
    /// Answers `ask` as the module would, with the host imports `ctx` gives
    /// (configuration, directory, issuer, upstream reads).
    fn answer<'a>(&'a self, ctx: &'a CallContext, ask: Ask<'a>) -> Answering<'a>;
}

/// The twins a runtime may use, by module digest.
pub trait Twins: Send + Sync {
    fn twin(&self, digest: &str) -> Option<Arc<dyn Twin>>;
}
