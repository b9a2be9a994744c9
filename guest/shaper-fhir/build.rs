//! The shaper's memory starts larger than other modules' (384 KiB, see
//! `.cargo/config.toml`): a searchset page is parsed into a tree and written
//! out again within it, so shaping one does not grow the memory, and the
//! gateway keeps the instance for the tenant's next request (a call that
//! grows an instance's memory retires the instance). Only the pages a call
//! writes become resident, and only those are reset when the instance goes.

/// 8 MiB: a page of about 200 KB shaped again and again on one instance, or
/// one of about 400 KB once, without growing. A call takes about thirteen
/// times its page (the parsed tree, the shaped copy); the call arena
/// (`fhirgate_guest_sdk::alloc`) then settles on one chunk of the next power
/// of two that holds a whole call, about twice that.
const INITIAL_MEMORY: u32 = 8 * 1024 * 1024;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // Given after the target's flags, so this one counts.
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={INITIAL_MEMORY}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
