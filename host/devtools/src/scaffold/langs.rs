//! New modules in JavaScript and Python: the role's template, the language's
//! SDK and the WIT contract copied in, and the build set-up (a
//! `package.json` whose `build` script runs `componentize-js`; a
//! `requirements.txt` naming `componentize-py` and the one command that
//! builds with it).

use std::path::{Path, PathBuf};

use super::{Lang, NewRole, put, test_line};

/// A new module: where it is, the component its build makes (relative to
/// it), and the commands that build and test it, run in its directory.
#[derive(Debug, Clone)]
pub struct Made {
    pub root: PathBuf,
    pub file: String,
    /// What installs the toolchain, once (none for Rust beyond rustup).
    pub setup: Option<String>,
    pub build: String,
    pub test: String,
}

/// The toolchain versions the templates pin: the ones this gateway's own
/// JavaScript and Python modules are built and tested with.
const COMPONENTIZE_JS: &str = "0.23.0";
const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js loads this at run time without depending on it.
const PREVIEW2_SHIM: &str = "0.25.0";
/// What `npm run check` type-checks the module with.
const TYPESCRIPT: &str = "7.0.2";

/// Writes the module `name` of `role` in `lang` (JavaScript or Python) at
/// `root`, but for its cases.
pub(super) fn write(root: &Path, name: &str, role: NewRole, lang: Lang) -> anyhow::Result<Made> {
    let world = role.world();
    let stem = name.replace('-', "_");
    let file = format!("{stem}.wasm");
    let (source, export, template) = match (lang, role) {
        (Lang::Js, NewRole::Router) => {
            ("router.js", "routing", include_str!("../../templates/guest-js/router.js.tmpl"))
        }
        (Lang::Js, NewRole::Validator) => {
            ("validator.js", "tokenValidation", include_str!("../../templates/guest-js/validator.js.tmpl"))
        }
        (Lang::Js, NewRole::Shaper) => {
            ("shaper.js", "shaping", include_str!("../../templates/guest-js/shaper.js.tmpl"))
        }
        (_, NewRole::Router) => ("app.py", "Routing", include_str!("../../templates/guest-py/router.py.tmpl")),
        (_, NewRole::Validator) => {
            ("app.py", "TokenValidation", include_str!("../../templates/guest-py/validator.py.tmpl"))
        }
        (_, NewRole::Shaper) => ("app.py", "Shaping", include_str!("../../templates/guest-py/shaper.py.tmpl")),
    };
    let setup = match lang {
        Lang::Js => "npm install",
        _ => "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
    };
    let build = match lang {
        Lang::Js => "npm run build".to_owned(),
        _ => format!(".venv/bin/componentize-py -d sdk/wit -w {world} componentize app -p src -p sdk -o {file}"),
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{role}}", role.policy_key())
            .replace("{{world}}", world)
            .replace("{{source}}", source)
            .replace("{{export}}", export)
            .replace("{{file}}", &file)
            .replace("{{build}}", &build)
            .replace("{{componentize_js}}", COMPONENTIZE_JS)
            .replace("{{componentize_py}}", COMPONENTIZE_PY)
            .replace("{{preview2_shim}}", PREVIEW2_SHIM)
            .replace("{{typescript}}", TYPESCRIPT)
    };
    put(root, &format!("src/{source}"), &fill(template))?;
    for (rel, text) in super::sdk::WIT {
        put(root, &format!("sdk/wit/{rel}"), text)?;
    }
    match lang {
        Lang::Js => {
            put(root, "package.json", &fill(include_str!("../../templates/guest-js/package.json.tmpl")))?;
            put(root, "README.md", &fill(include_str!("../../templates/guest-js/README.md.tmpl")))?;
            put(root, "sdk/fhirgate.js", include_str!("../../../../guest/js/sdk/fhirgate.js"))?;
            put(root, "sdk/fhirgate.d.ts", include_str!("../../../../guest/js/sdk/fhirgate.d.ts"))?;
            put(root, "sdk/README.md", include_str!("../../../../guest/js/sdk/README.md"))?;
            put(root, ".gitignore", &format!("/node_modules\n/{file}\n"))?;
        }
        _ => {
            put(root, "requirements.txt", &fill(include_str!("../../templates/guest-py/requirements.txt.tmpl")))?;
            put(root, "README.md", &fill(include_str!("../../templates/guest-py/README.md.tmpl")))?;
            put(root, "sdk/fhirgate.py", include_str!("../../../../guest/python/sdk/fhirgate.py"))?;
            put(root, "sdk/README.md", include_str!("../../../../guest/python/sdk/README.md"))?;
            put(root, ".gitignore", &format!("/.venv\n/{file}\n__pycache__/\n"))?;
        }
    }
    tracing::debug!(module = name, role = role.policy_key(), ?lang, "module created");
    Ok(Made { root: root.to_owned(), setup: Some(setup.into()), test: test_line(&file), file, build })
}
