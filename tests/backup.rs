//! Key material at rest and backups that restore: the database and the key
//! files hold no usable key without the key-encryption key; a backup taken
//! while the gateway serves, restored into a new directory, honours every
//! token and secret that was valid; a gateway given a database without its
//! keys says so at start-up.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{Setup, cli_json, provider, start};

const TENANT: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
/// Tokens are issued for this address whichever port a gateway listens on,
/// so a restored gateway accepts what the original issued.
const CONFIG: &str = "public_url = \"http://gateway.test\"\naccepted_hosts = [\"127.0.0.1\"]\n";

fn token_with(base: &str, client_id: &str, secret: &str) -> (u16, Value) {
    let resp = support::http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn read(base: &str, token: &str) -> u16 {
    support::http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(token).send().unwrap().status().as_u16()
}

fn serve(config: &Path, data: &Path) -> (support::Running, String) {
    let running = start(&[
        "serve",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let base = format!("http://{}", running.get("address"));
    (running, base)
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `fhirgate serve` process with a data directory, and its provider.
fn gateway() -> (support::Running, support::Served) {
    let (provider, base) = provider();
    let gw = Setup {
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT],
        data_dir: true,
        extra_config: CONFIG,
        ..Default::default()
    }
    .serve_binary();
    (provider, gw)
}

#[test]
fn key_material_is_sealed_and_a_database_without_its_keys_says_so() {
    let (_provider, gw) = gateway();
    let data = gw.dir.path().join("data");
    let config = gw.dir.path().join("gateway.toml");
    let token = gw.token(TENANT);
    assert_eq!(read(&gw.base, &token), 200);
    drop(gw.running);

    // The database, its log and the key files hold no private key, no
    // secret-hash or cursor key in the clear: copying them (as the attack
    // did) gives nothing to sign with.
    let kek = data.join("kek.key");
    let mut state = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        if entry.path() != kek && entry.path().is_file() {
            state.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(!contains(&state, b"PRIVATE KEY"), "a signing key in plain text");
    let kek_text = std::fs::read_to_string(&kek).unwrap();
    assert!(!contains(&state, kek_text.trim().as_bytes()));
    for name in ["pepper.key", "cursor.key"] {
        let text = std::fs::read_to_string(data.join(name)).unwrap();
        assert!(text.starts_with("fhirgate-sealed:v1:"), "{name}: {text:.20}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Without the KEK, or without pepper.key, the gateway stops and says why.
    let config = config.to_str().unwrap();
    let moved = data.with_file_name("kek.key.elsewhere");
    std::fs::rename(&kek, &moved).unwrap();
    let (ok, text) = support::run_cli(&["serve", "--listen", "127.0.0.1:0", "--config", config]);
    assert!(!ok && text.contains("key-encryption key is missing"), "{text}");
    std::fs::rename(&moved, &kek).unwrap();
    let pepper = data.join("pepper.key");
    std::fs::rename(&pepper, data.with_file_name("pepper.key.elsewhere")).unwrap();
    let (ok, text) = support::run_cli(&["serve", "--listen", "127.0.0.1:0", "--config", config]);
    assert!(!ok && text.contains("pepper.key is missing"), "{text}");
}

#[test]
fn a_backup_taken_while_serving_restores_tokens_and_secrets() {
    let (_provider, gw) = gateway();
    let data = gw.dir.path().join("data");
    let config = gw.dir.path().join("gateway.toml");
    let data_arg = data.to_str().unwrap();

    // A client registered in the store: its secret is checked with pepper.key.
    let created =
        cli_json(&["client", "--data-dir", data_arg, "create", "--name", "Care-team app", "--tenant", TENANT]);
    let client_id = created["client"]["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (status, body) = token_with(&gw.base, &client_id, &secret);
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(read(&gw.base, &token), 200);

    // Reads keep the gateway writing its access log while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, base, token) = (stop.clone(), served.clone(), gw.base.clone(), token.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(read(&base, &token), 200);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("b1");
    let made = cli_json(&["backup", "--data-dir", data_arg, backup.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(served.load(Ordering::Relaxed) > 10, "reads went on during the backup");
    assert!(!backup.join("kek.key").exists(), "the KEK stays out of backups");
    assert!(!contains(&all_bytes(&backup), b"PRIVATE KEY"));
    drop(gw.running);

    // Never over a data directory, and only with the KEK the backup was made with.
    let kek = data.join("kek.key");
    let (ok, text) = support::run_cli(&[
        "restore",
        "--data-dir",
        data_arg,
        "--kek-file",
        kek.to_str().unwrap(),
        backup.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("holds a gateway's data"), "{text}");
    let other = backups.path().join("other.kek");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&other).unwrap();
        f.write_all(&[b'7'; 64]).unwrap();
    }
    let restored = backups.path().join("restored");
    let restored_arg = restored.to_str().unwrap();
    let (ok, text) = support::run_cli(&[
        "restore",
        "--data-dir",
        restored_arg,
        "--kek-file",
        other.to_str().unwrap(),
        backup.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains(made["kek"].as_str().unwrap()), "{text}");
    assert!(!restored.exists(), "a refused restore leaves nothing behind");

    cli_json(&[
        "restore",
        "--data-dir",
        restored_arg,
        "--kek-file",
        kek.to_str().unwrap(),
        "--install-kek",
        backup.to_str().unwrap(),
    ]);
    let (_running, base) = serve(&config, &restored);
    assert_eq!(read(&base, &token), 200, "a token issued before the backup");
    let (status, body) = token_with(&base, &client_id, &secret);
    assert_eq!(status, 200, "the registered client's secret: {body}");
    assert_eq!(read(&base, body["access_token"].as_str().unwrap()), 200);
    let (status, _) = token_with(&base, &client_id, "not-the-secret");
    assert_eq!(status, 401);
}
