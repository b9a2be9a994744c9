//! The portal in a real browser: `tests/node/portal.test.mjs` (node --test,
//! playwright-core driving Debian's Chromium, axe-core, a TOTP library) run
//! against a gateway started here, with users made on its data directory
//! (an operator, an app owner, an approver, a developer, an auditor) and a
//! demo provider the operator registers through the pages.
//! Screenshots land in `target/portal-screenshots/`.

mod support;

use serde_json::json;
use support::{Setup, cli_json, cli_with_input, guest, provider, repo_root};

#[test]
fn the_portal_works_in_a_browser_with_and_without_javascript() {
    let (_provider, provider_base) = provider();
    let gw = Setup {
        data_dir: true,
        people_only_admin: true,
        extra_config: "[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n",
        ..Default::default()
    }
    .serve();
    let data = gw.dir.path().join("data");
    let data = data.to_str().unwrap();
    // An app registration (production and test client ids) owned by ada,
    // and someone else's.
    let tenant = "abababab-0000-4000-8000-0000000000ab";
    let client = |name: &str| cli_json(&["client", "--data-dir", data, "create", "--name", name, "--tenant", tenant]);
    let (owned, other) = (client("Ward app"), client("Someone else's app"));
    let owned_id = owned["client"]["client_id"].as_str().unwrap().to_owned();
    let clients = json!({
        "tenant": tenant,
        "provider_base": provider_base,
        "other_secret": other["client_secret"],
        "owned": owned_id,
        "owned_test": owned["test_client"]["client_id"],
        "other": other["client"]["client_id"],
    });
    let mut users = Vec::new();
    let roles = [
        ("olga", "operator".to_owned()),
        ("nina", "operator".to_owned()),
        ("ada", format!("app-owner:{owned_id}")),
        ("bea", format!("approver:{tenant}")),
        ("dana", format!("developer:{tenant}")),
        ("aude", "auditor".to_owned()),
    ];
    for (name, role) in &roles {
        let name = *name;
        cli_json(&["user", "--data-dir", data, "create", name, "--role", role]);
        let password = format!("{name}'s long pass phrase");
        cli_with_input(&["user", "--data-dir", data, "password", name], &password);
        let totp = cli_json(&["user", "--data-dir", data, "totp", name]);
        users.push(json!({ "username": name, "password": password, "totp_uri": totp["otpauth_uri"] }));
    }
    let shots = repo_root().join("target/portal-screenshots");
    let out = std::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-timeout=600000", "tests/node/portal.test.mjs"])
        .current_dir(repo_root())
        .env("FHIRGATE_URL", &gw.base)
        .env("PORTAL_USERS", json!(users).to_string())
        .env("PORTAL_CLIENTS", clients.to_string())
        .env("SCREENSHOT_DIR", &shots)
        .env("PORTAL_MODULE", guest("fhirgate_router_table"))
        .output()
        .expect("node (tests/setup.sh installs tests/node)");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "the browser tests failed:\n{report}");
    for page in [
        "sign-in",
        "account",
        "new-token",
        "register",
        "registered",
        "client-activity",
        "clients",
        "client-secret",
        "tenants",
        "approval",
        "integration",
        "access-log",
        "health",
        "modules",
        "users",
        "invitation",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}
