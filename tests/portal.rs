//! The portal in a real browser: `tests/node/portal.test.mjs` (node --test,
//! playwright-core driving Debian's Chromium, axe-core, a TOTP library) run
//! against a gateway started here, with users made on its data directory.
//! Screenshots land in `target/portal-screenshots/`.

mod support;

use serde_json::json;
use support::{Setup, cli_json, cli_with_input, repo_root};

#[test]
fn the_portal_works_in_a_browser_with_and_without_javascript() {
    let gw = Setup { data_dir: true, people_only_admin: true, ..Default::default() }.serve();
    let data = gw.dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut users = Vec::new();
    for name in ["olga", "nina"] {
        cli_json(&["user", "--data-dir", data, "create", name, "--role", "operator"]);
        let password = format!("{name}'s long pass phrase");
        cli_with_input(&["user", "--data-dir", data, "password", name], &password);
        let totp = cli_json(&["user", "--data-dir", data, "totp", name]);
        users.push(json!({ "username": name, "password": password, "totp_uri": totp["otpauth_uri"] }));
    }
    let shots = repo_root().join("target/portal-screenshots");
    let out = std::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-timeout=120000", "tests/node/portal.test.mjs"])
        .current_dir(repo_root())
        .env("FHIRGATE_URL", &gw.base)
        .env("PORTAL_USERS", json!(users).to_string())
        .env("SCREENSHOT_DIR", &shots)
        .output()
        .expect("node (tests/setup.sh installs tests/node)");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "the browser tests failed:\n{report}");
    for page in ["sign-in", "account", "new-token"] {
        assert!(shots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}
