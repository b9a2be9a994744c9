//! HTTPS as apps and hospitals meet it: a Python client (httpx) trusting a
//! test CA gets a token and FHIR answers over TLS with HTTP/1.1 and HTTP/2;
//! a replaced certificate is served without a restart while an open
//! connection goes on; and a provider that demands a client certificate is
//! reached with the one its declaration names, and only with it.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{SECRET, Setup, python, repo_root, start};

const TENANT_A: &str = "cccccccc-0000-4000-8000-00000000000a";
const TENANT_B: &str = "cccccccc-0000-4000-8000-00000000000b";

fn tls_client(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/tls_client.py"))
        .args(args)
        .output()
        .expect("running tls_client.py");
    assert!(
        out.status.success(),
        "tls_client.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The test CA, two server certificates and a client certificate.
fn certificates() -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let serials = json(&tls_client(&["certs", path(dir.path())]));
    (dir, serials)
}

fn same_serial(a: &str, b: &str) -> bool {
    a.trim_start_matches('0').eq_ignore_ascii_case(b.trim_start_matches('0'))
}

#[test]
fn a_python_client_speaks_http1_and_http2_over_tls_and_a_new_certificate_is_served_without_a_restart() {
    let (certs, serials) = certificates();
    let (_provider, provider_base) = support::provider();
    // The listener's own copies: the test replaces them.
    let (cert, key) = (certs.path().join("listener.pem"), certs.path().join("listener.key"));
    std::fs::copy(certs.path().join("server.pem"), &cert).unwrap();
    std::fs::copy(certs.path().join("server.key"), &key).unwrap();
    let config = format!(
        "public_url = \"https://gateway.test\"\naccepted_hosts = [\"127.0.0.1\"]\n\n[tls]\ncert_file = {:?}\n\
         key_file = {:?}\nhsts_max_age_seconds = 31536000\n",
        path(&cert),
        path(&key)
    );
    let gw = Setup {
        routes: &[(TENANT_A, "p")],
        tenants: &[(TENANT_A, "p")],
        providers: &[("p", &provider_base)],
        client_tenants: &[TENANT_A],
        extra_config: &config,
        ..Default::default()
    }
    .serve_binary();
    assert_eq!(gw.running.get("scheme"), "https");
    let address = gw.running.get("address");
    let base = format!("https://{address}");
    let ca = certs.path().join("ca.pem");

    let answers = json(&tls_client(&["fhir", &base, path(&ca), "app", SECRET, TENANT_A]));
    for (label, version) in [("http1", "HTTP/1.1"), ("http2", "HTTP/2")] {
        let a = &answers[label];
        assert_eq!(a["token_status"], 200, "{answers}");
        assert_eq!(a["token_version"], version, "{answers}");
        assert_eq!(a["read_status"], 200, "{answers}");
        assert_eq!(a["read_version"], version, "{answers}");
        assert_eq!(a["resource_type"], "Patient", "{answers}");
        assert_eq!(a["hsts"], "max-age=31536000", "{answers}");
    }

    // Plain HTTP on the TLS port gets nothing.
    assert!(support::http().get(format!("http://{address}/stu3/metadata")).send().is_err());

    // A renewal: the files replaced under the running gateway.
    let (host, port) = address.rsplit_once(':').unwrap();
    let token = answers["http1"]["access_token"].as_str().unwrap().to_owned();
    let served = tls_client(&["serial", host, port, path(&ca)]);
    assert!(same_serial(&served, serials["server"].as_str().unwrap()), "{served} {serials}");
    let renewal = json(&tls_client(&[
        "keepalive",
        host,
        port,
        path(&ca),
        &token,
        "/stu3/Patient/pat-001",
        path(&certs.path().join("server2.pem")),
        path(&certs.path().join("server2.key")),
        path(&cert),
        path(&key),
    ]));
    assert!(same_serial(renewal["serial_after"].as_str().unwrap(), serials["server2"].as_str().unwrap()), "{renewal}");
    assert_eq!(renewal["first"], 200, "{renewal}");
    assert_eq!(renewal["second"], 200, "{renewal}");
    assert_eq!(renewal["same_connection"], true, "the open connection was kept: {renewal}");
}

#[test]
fn a_provider_that_requires_a_client_certificate_is_reached_with_the_declared_one() {
    let (certs, _) = certificates();
    let p = |name: &str| certs.path().join(name).display().to_string();
    let provider = start(&[
        "provider",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
        "--client-ca",
        &p("ca.pem"),
    ]);
    let base = provider.get("base_url");
    assert!(base.starts_with("https://"), "{base}");
    // `with` presents the client certificate; `without` only trusts the CA.
    let providers = format!(
        "[providers.with]\nbase_url = {base:?}\nfhir_version = \"r4\"\ntimeout_ms = 3000\nca_file = {:?}\n\
         client_cert_file = {:?}\nclient_key_file = {:?}\n\n\
         [providers.without]\nbase_url = {base:?}\nfhir_version = \"r4\"\ntimeout_ms = 3000\nca_file = {:?}\n",
        p("ca.pem"),
        p("client.pem"),
        p("client.key"),
        p("ca.pem")
    );
    let gw = Setup {
        routes: &[(TENANT_A, "with"), (TENANT_B, "without")],
        tenants: &[(TENANT_A, "with"), (TENANT_B, "without")],
        client_tenants: &[TENANT_A, TENANT_B],
        extra_policy: &providers,
        ..Default::default()
    }
    .serve();
    let read = |tenant: &str| {
        let token = gw.token(tenant);
        support::http()
            .get(format!("{}/stu3/Patient/pat-001", gw.base))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(read(TENANT_A), 200, "with the client certificate");
    assert_eq!(read(TENANT_B), 502, "the provider refuses a client without one");
}
