//! The WebAssembly runtime: one engine, modules compiled once and
//! pre-instantiated, a fresh sandboxed instance per call with a time limit and
//! a memory cap.
//!
//! - [`runtime`]: the engine, the linker with the host imports, the epoch ticker;
//! - [`module`]: a loaded module and its typed calls per role;
//! - [`state`]: what a store carries, and the host imports' implementation;
//! - [`harness`]: loading and calling a module alone, with its host imports
//!   supplied by the test (no server).

pub mod bindings;
pub mod cases;
pub mod harness;
pub mod module;
pub mod runtime;
pub mod state;

pub use module::{GuestFault, Module, Role};
pub use runtime::{Limits, Runtime};
pub use state::{CallContext, IssuerFacts};
