//! Embeds the default modules as `cargo build-guests` left them in the
//! target directory. A build before them (`cargo clippy` on a fresh clone)
//! embeds none and says so at run time; the build scripts reruns once they
//! exist.

use std::path::{Path, PathBuf};

/// (name in a policy, file stem of the build).
const MODULES: [(&str, &str); 4] = [
    ("token-jwt", "fhirgate_token_jwt"),
    ("router-table", "fhirgate_router_table"),
    ("router-rules", "fhirgate_router_rules"),
    ("shaper-fhir", "fhirgate_shaper_fhir"),
];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let target = out.ancestors().nth(4).map(Path::to_path_buf).expect("the target directory");
    let guests = target.join("wasm32-wasip2/guest");
    let mut code =
        String::from("/// The modules built in: (name, bytes).\npub static MODULES: &[(&str, &[u8])] = &[\n");
    for (name, stem) in MODULES {
        let file = guests.join(format!("{stem}.wasm"));
        println!("cargo::rerun-if-changed={}", file.display());
        if file.exists() {
            code += &format!("    ({name:?}, include_bytes!({:?})),\n", file.display().to_string());
        }
    }
    code += "];\n";
    std::fs::write(out.join("modules.rs"), code).expect("writing modules.rs");
}
