//! fhirgate-builtin: the default policy modules — `token-jwt` (validates the
//! gateway's own tokens), `router-table` and `router-rules` (route a tenant
//! to its provider), `shaper-fhir` (shapes R4, STU3 and DSTU2 answers into
//! the client's version) — compiled into the binary, so that a policy names
//! one with `builtin = "token-jwt"` and no file.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

/// Every name a policy may give as `builtin`.
pub const NAMES: [&str; 4] = ["token-jwt", "router-table", "router-rules", "shaper-fhir"];

/// The bytes of built-in module `name`.
pub fn module(name: &str) -> Result<&'static [u8], String> {
    if let Some((_, bytes)) = MODULES.iter().find(|(n, _)| *n == name) {
        return Ok(bytes);
    }
    if NAMES.contains(&name) {
        Err("this fhirgate was built without its default modules: build them first (`cargo build-guests`), \
             then fhirgate, or name the module's file with `path`"
            .to_owned())
    } else {
        Err(format!("there is no built-in module `{name}`: the built-in ones are {}", NAMES.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_is_built_in_and_unknown_names_are_explained() {
        for name in super::NAMES {
            let bytes = super::module(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(bytes.starts_with(b"\0asm"), "{name} is a WebAssembly binary");
        }
        assert!(super::module("router-magic").unwrap_err().contains("router-table"));
    }
}
