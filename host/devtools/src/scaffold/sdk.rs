//! The guest SDK, vendored into each new module: its sources and the WIT
//! contract are compiled into this binary, so a module crate made by
//! `fhirgate guest new` builds anywhere, with nothing pointing back into the
//! source tree the binary came from.

use std::path::Path;

use anyhow::Context as _;

/// The SDK's files, by path inside the vendored `sdk/` directory.
const FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../../guest/sdk/README.md")),
    ("src/lib.rs", include_str!("../../../../guest/sdk/src/lib.rs")),
    ("src/alloc.rs", include_str!("../../../../guest/sdk/src/alloc.rs")),
    ("src/fhir.rs", include_str!("../../../../guest/sdk/src/fhir.rs")),
    ("src/jwt.rs", include_str!("../../../../guest/sdk/src/jwt.rs")),
    ("src/params.rs", include_str!("../../../../guest/sdk/src/params.rs")),
];

/// The WIT contract, copied into each new module's `sdk/wit/`, whatever its
/// language.
pub(super) const WIT: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../../wit/README.md")),
    ("host.wit", include_str!("../../../../wit/host.wit")),
    ("roles.wit", include_str!("../../../../wit/roles.wit")),
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../../wit/worlds.wit")),
];

/// The SDK's manifest and the workspace's, whose package fields and
/// dependency versions the SDK inherits.
const SDK_MANIFEST: &str = include_str!("../../../../guest/sdk/Cargo.toml");
const WORKSPACE_MANIFEST: &str = include_str!("../../../../Cargo.toml");

/// Where the SDK's sources find the WIT in the source tree, and in the
/// vendored copy.
const WIT_IN_TREE: &str = r#"path: "../../wit""#;
const WIT_VENDORED: &str = r#"path: "wit""#;

/// Writes the SDK into `dir` (the new module's `sdk/`).
pub fn vendor(dir: &Path) -> anyhow::Result<()> {
    for (rel, text) in FILES {
        let text = if *rel == "src/lib.rs" { text.replace(WIT_IN_TREE, WIT_VENDORED) } else { (*text).to_owned() };
        super::put(dir, rel, &text)?;
    }
    for (rel, text) in WIT {
        super::put(dir, &format!("wit/{rel}"), text)?;
    }
    let manifest = dir.join("Cargo.toml");
    std::fs::write(&manifest, standalone_manifest()?).with_context(|| format!("writing {}", manifest.display()))
}

/// The SDK's manifest with every `workspace = true` replaced by the
/// workspace's own value: a crate that builds outside the workspace.
fn standalone_manifest() -> anyhow::Result<String> {
    let workspace: toml::Table = WORKSPACE_MANIFEST.parse().context("the workspace manifest")?;
    let mut sdk: toml::Table = SDK_MANIFEST.parse().context("the SDK manifest")?;
    let shared = workspace.get("workspace").and_then(toml::Value::as_table).context("no [workspace]")?;
    let package_fields = shared.get("package").and_then(toml::Value::as_table).context("no [workspace.package]")?;
    let versions = shared.get("dependencies").and_then(toml::Value::as_table).context("no [workspace.dependencies]")?;
    if let Some(package) = sdk.get_mut("package").and_then(toml::Value::as_table_mut) {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = package_fields.get(key).with_context(|| format!("no workspace.package.{key}"))?.clone();
            }
        }
    }
    if let Some(deps) = sdk.get_mut("dependencies").and_then(toml::Value::as_table_mut) {
        for (name, value) in deps.iter_mut() {
            if !inherits(value) {
                continue;
            }
            let mut resolved = match versions.get(name).with_context(|| format!("no workspace dependency {name}"))? {
                toml::Value::String(version) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), toml::Value::String(version.clone()));
                    t
                }
                toml::Value::Table(t) => t.clone(),
                other => anyhow::bail!("workspace dependency {name} is {other}"),
            };
            // The SDK's own keys (`optional`, extra features) stay.
            if let Some(own) = value.as_table() {
                for (key, v) in own.iter().filter(|(k, _)| *k != "workspace") {
                    resolved.insert(key.clone(), v.clone());
                }
            }
            *value = toml::Value::Table(resolved);
        }
    }
    Ok(format!(
        "# fhirgate's guest SDK, vendored by `fhirgate guest new` with the WIT contract (`wit/`).\n{}",
        toml::to_string(&sdk)?
    ))
}

/// `key.workspace = true`.
fn inherits(value: &toml::Value) -> bool {
    value.get("workspace").and_then(toml::Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the SDK and the WIT is vendored: one added to either
    /// must be added to [`FILES`] or [`WIT`].
    #[test]
    fn every_sdk_and_wit_file_is_vendored() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut on_disk = Vec::new();
        for (dir, prefix) in [("guest/sdk/src", "src/"), ("wit", "wit/")] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                on_disk.push(format!("{prefix}{name}"));
            }
        }
        let vendored = |name: &str| match name.strip_prefix("wit/") {
            Some(wit) => WIT.iter().any(|(rel, _)| *rel == wit),
            None => FILES.iter().any(|(rel, _)| *rel == name),
        };
        for name in on_disk {
            assert!(vendored(&name), "{name} is not vendored into new modules");
        }
        assert!(FILES.iter().any(|(rel, text)| *rel == "src/lib.rs" && text.contains(WIT_IN_TREE)));
    }

    #[test]
    fn the_vendored_manifest_inherits_nothing() {
        let text = standalone_manifest().unwrap();
        assert!(!text.contains("workspace"), "{text}");
        let manifest: toml::Table = text.parse().unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("fhirgate-guest-sdk"));
        assert!(manifest["package"]["version"].is_str());
        assert_eq!(manifest["dependencies"]["jsonwebtoken"]["optional"].as_bool(), Some(true));
        assert!(manifest["dependencies"]["wit-bindgen"]["version"].is_str());
    }
}
