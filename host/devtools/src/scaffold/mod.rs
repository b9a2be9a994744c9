//! `fhirgate guest new`: a buildable module crate to start from, with its
//! README, test cases and build settings; the WIT contract and its bindings
//! come with the SDK, vendored into the crate.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;

/// The roles a new module can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewRole {
    Router,
    Validator,
    Shaper,
}

impl NewRole {
    /// The role's key in the policy (`[modules.<key>]`).
    pub fn policy_key(self) -> &'static str {
        match self {
            NewRole::Router => "routing",
            NewRole::Validator => "token-validation",
            NewRole::Shaper => "shaping",
        }
    }

    /// The WIT world a module of this role is built for.
    pub fn world(self) -> &'static str {
        match self {
            NewRole::Router => "router",
            NewRole::Validator => "token-validator",
            NewRole::Shaper => "shaper",
        }
    }
}

/// The languages a new module can be written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[default]
    Rust,
    Js,
    Python,
}

mod langs;
mod sdk;

pub use langs::Made;

/// Creates the module `dir/name` for a `role` in `lang`: its source, README,
/// cases and build set-up, with the SDK and the WIT contract copied in (a
/// Rust crate may depend on an SDK checkout at `sdk` instead). What was
/// made, and how to build and test it.
pub fn new_in(dir: &Path, name: &str, role: NewRole, lang: Lang, sdk: Option<&Path>) -> anyhow::Result<Made> {
    match lang {
        Lang::Rust => {
            let root = new_module(dir, name, role, sdk)?;
            let file = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
            Ok(Made {
                setup: None,
                build: "cargo build --release --target wasm32-wasip2".into(),
                test: test_line(&file),
                file,
                root,
            })
        }
        Lang::Js | Lang::Python => {
            if sdk.is_some() {
                bail!("`--sdk` names a Rust SDK crate; a {lang:?} module gets its SDK copied in");
            }
            let root = fresh_root(dir, name)?;
            let made = langs::write(&root, name, role, lang)?;
            write_cases(&root, role)?;
            Ok(made)
        }
    }
}

/// Writes `text` at `rel` under `root`, making directories on the way.
fn put(root: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn test_line(file: &str) -> String {
    format!("fhirgate guest test {file} cases")
}

/// `dir/name`, checked: a valid name, and nothing there yet.
fn fresh_root(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("`{name}`: a module name is lower-case letters, digits and `-`, starting with a letter");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    Ok(root)
}

/// Creates the crate `dir/name` for a `role` module; returns its directory.
/// It depends on the SDK at `sdk` when given (a checkout of the SDK's
/// crate), else on a copy of this build's SDK and WIT in its `sdk/`
/// directory: the crate then builds anywhere on its own.
pub fn new_module(dir: &Path, name: &str, role: NewRole, sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    let root = fresh_root(dir, name)?;
    let sdk_path = match sdk {
        Some(sdk) => sdk.canonicalize().with_context(|| format!("the SDK at {}", sdk.display()))?.display().to_string(),
        None => "sdk".to_owned(),
    };
    let crate_name = name.replace('-', "_");
    let policy_role = role.policy_key();
    let source = match role {
        NewRole::Router => include_str!("../../templates/guest/router.rs.tmpl"),
        NewRole::Validator => include_str!("../../templates/guest/validator.rs.tmpl"),
        NewRole::Shaper => include_str!("../../templates/guest/shaper.rs.tmpl"),
    };
    // A validator verifies tokens with the SDK's `jwt` feature.
    let sdk_features = if role == NewRole::Validator { r#", features = ["jwt"]"# } else { "" };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{role}}", policy_role)
            .replace("{{sdk}}", &sdk_path)
            .replace("{{sdk_features}}", sdk_features)
    };
    let write = |rel: &str, text: &str| put(&root, rel, text);
    write("Cargo.toml", &fill(include_str!("../../templates/guest/Cargo.toml.tmpl")))?;
    write("src/lib.rs", &fill(source))?;
    write("README.md", &fill(include_str!("../../templates/guest/README.md.tmpl")))?;
    write(".gitignore", "/target\n")?;
    if sdk.is_none() {
        sdk::vendor(&root.join("sdk"))?;
    }
    write_cases(&root, role)?;
    tracing::debug!(module = name, role = policy_role, "module crate created");
    Ok(root)
}

/// Writes the cases a new module of `role` starts with into `root/cases/`,
/// each naming the case schema, a copy of which goes beside them (so an
/// editor checks a case as it is written).
fn write_cases(root: &Path, role: NewRole) -> anyhow::Result<()> {
    put(root, "case.schema.json", fhirgate_sandbox::cases::SCHEMA)?;
    for (file, mut case) in cases(role)? {
        if let Some(fields) = case.as_object_mut() {
            fields.insert("$schema".into(), json!("../case.schema.json"));
        }
        put(root, &format!("cases/{file}"), &(serde_json::to_string_pretty(&case)? + "\n"))?;
    }
    Ok(())
}

/// The `exp` of the token a validation case validates.
fn expiry(case: &serde_json::Value) -> anyhow::Result<u64> {
    use base64::Engine as _;
    let token = case["validate"]["token"].as_str().context("a validation case without a token")?;
    let payload = token.split('.').nth(1).context("a case token that is not a JWT")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    claims["exp"].as_u64().context("a case token without `exp`")
}

/// The cases a new module starts with: what its template does.
fn cases(role: NewRole) -> anyhow::Result<Vec<(&'static str, serde_json::Value)>> {
    let tenant = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
    let other = "8e1c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11";
    Ok(match role {
        NewRole::Router => {
            // A read of Patient/p1 by `claims_tenant`, the directory holding
            // `active` for it, with one tenant in the configuration.
            let read = |name: &str, claims_tenant: &str, active: serde_json::Value, expect: serde_json::Value| {
                json!({
                    "name": name,
                    "config": { "tenants": { tenant: "st-mary" } },
                    "host": { "active-providers": { claims_tenant: active } },
                    "route": {
                        "claims": { "tenant-id": claims_tenant },
                        "request": { "interaction": "read", "resource-type": "Patient", "resource-id": "p1" }
                    },
                    "expect": expect,
                })
            };
            vec![
                (
                    "known-tenant.json",
                    read(
                        "a tenant in the configuration goes to its provider",
                        tenant,
                        json!([]),
                        json!({ "ok": { "provider-id": "st-mary", "path": "Patient/p1" } }),
                    ),
                ),
                (
                    "directory-fallback.json",
                    read(
                        "a tenant not in the configuration goes to its active provider in the directory",
                        other,
                        json!([{ "id": "clinic", "fhir-version": "stu3" }]),
                        json!({ "ok": { "provider-id": "clinic", "path": "Patient/p1" } }),
                    ),
                ),
                (
                    "unknown-tenant.json",
                    read(
                        "a tenant with no provider, in the configuration or the directory, is refused",
                        other,
                        json!([]),
                        json!({ "denial": { "status": 403, "code": "unknown-tenant" } }),
                    ),
                ),
                ("bad-config.json", {
                    let mut case = read(
                        "a configuration it cannot read refuses every request instead of guessing",
                        tenant,
                        json!([{ "id": "clinic", "fhir-version": "stu3" }]),
                        json!({ "denial": { "status": 500, "code": "module-config" } }),
                    );
                    case["config"] = json!({ "tenants": { tenant: 42 } });
                    case
                }),
            ]
        }
        NewRole::Validator => {
            // The default validator's cases: tokens signed by a fixed test
            // key, under a fixed clock, for the client `care-team-app`.
            let shipped = |text: &str| serde_json::from_str::<serde_json::Value>(text);
            let mut good = shipped(include_str!("../../../../guest/token-jwt/cases/good-token.json"))?;
            // Whatever clients a deployment lists, this token passes the
            // checks every configuration shares.
            good["config"] = json!({});
            let mut other_client = good.clone();
            other_client["name"] = json!("a client the configuration does not list is refused");
            other_client["config"] = json!({ "clients": ["another-app"] });
            other_client["expect"] = json!({ "denial": { "status": 403, "code": "insufficient_scope" } });
            // 45 s after the token expired: through only under the 60 s
            // leeway configured, not the default 30.
            let mut listed = good.clone();
            listed["name"] = json!("a listed client gets through within the configured leeway");
            listed["config"] = json!({ "clients": ["care-team-app"], "token": { "leeway_seconds": 60 } });
            listed["host"]["now-ms"] = json!((expiry(&good)? + 45) * 1000);
            let mut late = listed.clone();
            late["name"] = json!("the default leeway is 30 s");
            late["config"] = json!({ "clients": ["care-team-app"] });
            late["expect"] = json!({ "denial": { "status": 401, "code": "invalid_token" } });
            // A mistake in the configuration refuses every token rather than
            // loosening a check.
            let misconfigured = |name: &str, config: serde_json::Value| {
                let mut case = good.clone();
                case["name"] = json!(name);
                case["config"] = config;
                case["expect"] = json!({ "denial": { "status": 500, "code": "server_error" } });
                case
            };
            let quoted_leeway = misconfigured(
                "a leeway that is not a number refuses every token",
                json!({ "token": { "leeway_seconds": "3600" } }),
            );
            let misspelt = misconfigured(
                "a misspelt token rule refuses every token",
                json!({ "token": { "required_scope": ["patient/*.read"] } }),
            );
            let clients_text = misconfigured(
                "a client list given as one string refuses every token",
                json!({ "clients": "care-team-app" }),
            );
            vec![
                ("bad-leeway.json", quoted_leeway),
                ("misspelt-rule.json", misspelt),
                ("clients-not-a-list.json", clients_text),
                ("good-token.json", good),
                ("listed-client.json", listed),
                ("default-leeway.json", late),
                ("other-client.json", other_client),
                ("expired.json", shipped(include_str!("../../../../guest/token-jwt/cases/expired.json"))?),
                ("garbage.json", shipped(include_str!("../../../../guest/token-jwt/cases/garbage.json"))?),
                ("no-tenant.json", shipped(include_str!("../../../../guest/token-jwt/cases/no-tenant.json"))?),
            ]
        }
        NewRole::Shaper => vec![
            (
                "same-version.json",
                json!({
                    "name": "an answer in the client's version comes through on the gateway's URLs",
                    "shape-response": {
                        "exchange": {
                            "client-version": "stu3", "upstream-version": "stu3", "interaction": "read",
                            "gateway-base": "https://gateway.example/stu3", "upstream-base": "https://ehr.example/fhir"
                        },
                        "status": 200,
                        "body": { "resourceType": "Patient", "id": "p1",
                                  "managingOrganization": { "reference": "https://ehr.example/fhir/Organization/o1" } }
                    },
                    "expect": { "ok": { "status": 200, "body": {
                        "id": "p1", "managingOrganization": { "reference": "https://gateway.example/stu3/Organization/o1" }
                    } } }
                }),
            ),
            (
                "other-version.json",
                json!({
                    "name": "other versions are refused until the module converts them",
                    "shape-request": {
                        "exchange": { "client-version": "dstu2", "upstream-version": "r4", "interaction": "read" },
                        "request": { "path": "Patient/p1" }
                    },
                    "expect": { "denial": { "status": 501 } }
                }),
            ),
        ],
    })
}
