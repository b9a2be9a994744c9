//! Signing in through a real OpenID Connect provider (the `oidc-provider`
//! npm package, in `tests/node`), the test playing the browser: the first
//! operator accepts an invitation through the provider, signs in again as
//! the identity bound then, and another person of the same provider (with
//! the same e-mail address) is turned away. A sign-in finished in another
//! browser, or finished twice, is refused.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::{Setup, cli_json, http, repo_root};

const CLIENT_SECRET: &str = "oidc-client-secret-0123456789";

/// The provider, stopped when dropped.
struct Op(Child);

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the provider on `port` for a client whose redirect URI is
/// `redirect`; it signs in whoever `account_file` names.
fn start_op(port: u16, redirect: &str, account_file: &Path) -> Op {
    let script = repo_root().join("tests/node/oidc_provider.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .args([&port.to_string(), "fhirgate", CLIENT_SECRET, redirect, account_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node (tests/node: npm ci --prefix tests/node)");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Whatever it prints later is read, so it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("the provider did not start: {line:?}"));
    assert_eq!(ready["event"], "ready");
    Op(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A browser without JavaScript: follows redirects itself and keeps the
/// provider's cookies.
struct Browser {
    client: reqwest::blocking::Client,
    op_cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, op_cookies: BTreeMap::new() }
    }

    /// Follows a sign-in from `start` (on the gateway) through the provider
    /// until the provider sends the browser back: the callback URL and the
    /// gateway's state cookie.
    fn follow_to_callback(&mut self, start: &str, gateway: &str) -> (String, String) {
        let resp = self.client.get(start).send().unwrap();
        assert_eq!(resp.status(), 303, "{:?}", resp.text());
        let state = cookie(&resp, "__Host-fhirgate-oidc").expect("a state cookie");
        let mut next = location(&resp);
        for _ in 0..10 {
            if next.starts_with(gateway) {
                return (next, state);
            }
            let jar: Vec<String> = self.op_cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let resp = self.client.get(&next).header("cookie", jar.join("; ")).send().unwrap();
            for value in resp.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    self.op_cookies.insert(k.to_owned(), v.to_owned());
                }
            }
            assert!(resp.status().is_redirection(), "{} at {next}: {:?}", resp.status(), resp.text());
            let location = location(&resp);
            next = if location.starts_with('/') { format!("{}{location}", origin(&next)) } else { location };
        }
        panic!("the provider never sent the browser back");
    }
}

fn location(resp: &reqwest::blocking::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_owned()
}

fn origin(url: &str) -> String {
    let after = url.find("://").unwrap() + 3;
    let end = url[after..].find('/').map(|i| after + i).unwrap_or(url.len());
    url[..end].to_owned()
}

fn cookie(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|p| p.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

#[test]
fn people_sign_in_through_an_openid_connect_provider_bound_by_issuer_and_subject() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("oidc.secret");
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let account_file = dir.path().join("account");
    let op_port = free_port();
    let issuer = format!("http://127.0.0.1:{op_port}");
    let admin = format!(
        "[[admin.oidc]]\nname = \"corp\"\nissuer = {issuer:?}\nclient_id = \"fhirgate\"\n\
         client_secret_file = {:?}\nscopes = [\"email\"]\n",
        secret_file.display().to_string()
    );
    let gw = Setup { data_dir: true, people_only_admin: true, admin_extra: &admin, ..Default::default() }.serve();
    let callback = format!("{}/admin/oidc/corp/callback", gw.base);
    let _op = start_op(op_port, &callback, &account_file);

    let listed: Value = http().get(format!("{}/admin/oidc", gw.base)).send().unwrap().json().unwrap();
    assert_eq!(listed["providers"][0]["redirect_uri"], callback.as_str());

    // The first operator: invited on the gateway's machine, accepting
    // through the provider as the person it knows as `248289761001`.
    let data = gw.dir.path().join("data");
    let invited = cli_json(&["user", "--data-dir", data.to_str().unwrap(), "invite", "olga", "--role", "operator"]);
    let token = invited["path"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    std::fs::write(&account_file, "248289761001").unwrap();
    let mut browser = Browser::new();
    let start = format!("{}/admin/oidc/corp/start?invitation={token}", gw.base);
    let (back, state) = browser.follow_to_callback(&start, &gw.base);
    let resp = browser.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text());
    let session = cookie(&resp, "__Host-fhirgate-session").expect("a session");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["user"]["username"], "olga");
    let me = |session: &str| {
        let resp = http()
            .get(format!("{}/admin/me", gw.base))
            .header("cookie", format!("__Host-fhirgate-session={session}"))
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap_or(Value::Null))
    };
    let (status, who) = me(&session);
    assert_eq!(status, 200);
    assert_eq!(who["user"]["roles"], serde_json::json!(["operator"]));
    // The same answer again is refused: a sign-in finishes once.
    let again = browser.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(again.status(), 400);

    let identities = cli_json(&["user", "--data-dir", data.to_str().unwrap(), "identities", "olga"]);
    assert_eq!(identities["identities"][0]["issuer"], issuer.as_str());
    assert_eq!(identities["identities"][0]["subject"], "248289761001");

    // Later: no invitation, the bound identity signs in.
    let start = format!("{}/admin/oidc/corp/start", gw.base);
    let (back, state) = browser.follow_to_callback(&start, &gw.base);
    // Finished in a browser that did not start it (no state cookie):
    // refused, and the sign-in is not used up by it.
    let elsewhere = http().get(&back).send().unwrap();
    assert_eq!(elsewhere.status(), 400);
    let resp = browser.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text());
    assert_eq!(resp.json::<Value>().unwrap()["user"]["username"], "olga");

    // From the portal, the browser comes back to the portal page; a return
    // address elsewhere is ignored.
    std::fs::write(&account_file, "248289761001").unwrap();
    let portal = format!("{}/admin/oidc/corp/start?return_to=/portal/", gw.base);
    let (back, state) = browser.follow_to_callback(&portal, &gw.base);
    let resp = browser.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(cookie(&resp, "__Host-fhirgate-session").is_some());
    assert!(resp.text().unwrap().contains("url=/portal/\""), "a page of the gateway's own moves on");
    let sneaky = format!("{}/admin/oidc/corp/start?return_to=/portal/../admin/users", gw.base);
    let (back, state) = browser.follow_to_callback(&sneaky, &gw.base);
    let resp = browser.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(resp.status(), 201, "no dot segments out of the portal");
    let away = format!("{}/admin/oidc/corp/start?return_to=//evil.example/", gw.base);
    let (back, state) = browser.follow_to_callback(&away, &gw.base);
    let resp = browser.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(resp.status(), 201, "no redirect off the portal");

    // Someone else at the same provider, with the same e-mail address: no
    // user is bound to them, so nobody is signed in.
    std::fs::write(&account_file, "mallory-77").unwrap();
    let mut other = Browser::new();
    let (back, state) = other.follow_to_callback(&start, &gw.base);
    let resp = other.client.get(&back).header("cookie", format!("__Host-fhirgate-oidc={state}")).send().unwrap();
    assert_eq!(resp.status(), 403);
    assert!(cookie(&resp, "__Host-fhirgate-session").is_none());
    assert!(resp.text().unwrap().contains("mallory-77"));

    // A used invitation cannot start another sign-in.
    let start = format!("{}/admin/oidc/corp/start?invitation={token}", gw.base);
    assert_eq!(http().get(&start).send().unwrap().status(), 404);
}
