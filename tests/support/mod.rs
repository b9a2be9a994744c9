//! What the end-to-end tests share: starting the gateway — in this process,
//! as `App`s on their own runtimes (the demo, or `serve` with a configuration
//! written for the test), or as the real `fhirgate` binary where a test is
//! about the command itself —, finding the built modules, and an HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// How long a child may take to print its ready line: module compilation in
/// an unoptimised build on a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// Every file under `root`, not following symbolic links.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let (mut dirs, mut files) = (vec![root.to_owned()], Vec::new());
    while let Some(path) = dirs.pop() {
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            dirs.extend(std::fs::read_dir(&path).expect("reading a directory").map(|e| e.expect("an entry").path()));
        } else {
            files.push(path);
        }
    }
    files
}

/// The module `name` as `cargo build-guests` builds it.
pub fn guest(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("wasm32-wasip2/guest").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: build the modules first with `cargo build-guests`", path.display());
    path
}

/// A gateway (or the demo, or the demo provider) a test started, stopped
/// when dropped; `ready` is the JSON line it printed when ready (the one
/// `--json` prints, for one served in this process).
pub struct Running {
    process: Process,
    pub ready: Value,
}

enum Process {
    /// The `fhirgate` binary, killed when dropped.
    Child(Child),
    /// Served in this process on a runtime of its own; dropping the sender
    /// asks it to stop, and the thread ends once it has drained.
    InProcess(Option<tokio::sync::oneshot::Sender<()>>, Option<std::thread::JoinHandle<()>>),
}

impl Drop for Running {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::InProcess(stop, thread) => {
                drop(stop.take());
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Runs `serve` in this process on a runtime of its own thread: it sends its
/// ready line, then serves until the receiver resolves (when the returned
/// [`Running`] is dropped).
fn in_process<F, Fut>(what: String, serve: F) -> Running
where
    F: FnOnce(mpsc::Sender<Value>, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let failed = ready_tx.clone();
    let thread = std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
        if let Err(e) = runtime.block_on(serve(ready_tx, stop_rx)) {
            let _ = failed.send(serde_json::json!({ "error": format!("{e:#}") }));
        }
    });
    let ready: Value = ready_rx.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| panic!("{what} did not become ready"));
    if let Some(error) = ready.get("error") {
        panic!("{what} failed to start: {error}");
    }
    Running { process: Process::InProcess(Some(stop_tx), Some(thread)), ready }
}

/// What `fhirgate serve --json --listen 127.0.0.1:0 --config <config>` does,
/// in this process: the same `App`, built from the same file.
pub fn serve_config(config: &Path) -> Running {
    let path = config.to_owned();
    in_process(format!("the gateway of {}", config.display()), move |ready, stop| async move {
        let config = fhirgate_gateway::config::Config::load(&path)?;
        let (listener, local) = fhirgate_http::server::bind("127.0.0.1:0".parse()?).await?;
        let app = fhirgate_gateway::App::build(&config, local, Default::default()).await?;
        let _ = ready.send(serde_json::json!({ "event": "ready", "address": local.to_string() }));
        fhirgate_http::server::run(listener, app.services().clone(), None, async {
            let _ = stop.await;
        })
        .await?;
        app.shutdown().await;
        Ok(())
    })
}

/// Starts `fhirgate <args>` and waits for the JSON line it prints when ready.
/// It logs warnings, or what `FHIRGATE_LOG` says.
pub fn start(args: &[&str]) -> Running {
    let level = std::env::var("FHIRGATE_LOG").unwrap_or_else(|_| "warn".into());
    start_with(args, &level, Stdio::inherit())
}

/// Starts `fhirgate <args>` logging at `level` into `stderr`.
pub fn start_with(args: &[&str], level: &str, stderr: Stdio) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fhirgate"));
    command.args(args).env("FHIRGATE_LOG", level).stderr(stderr);
    start_command(command, args)
}

/// Starts `fhirgate <args>` with at most `descriptors` open files (soft and
/// hard limit), as an operator's `ulimit -n` would.
pub fn start_limited(args: &[&str], descriptors: u32) -> Running {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fhirgate"))
        .args(args)
        .env("FHIRGATE_LOG", std::env::var("FHIRGATE_LOG").unwrap_or_else(|_| "warn".into()));
    start_command(command, args)
}

/// Runs `command` (a `fhirgate` process) in the repository and waits for
/// the JSON line it prints when ready.
fn start_command(mut command: Command, args: &[&str]) -> Running {
    let mut child = command.current_dir(repo_root()).stdout(Stdio::piped()).spawn().expect("starting fhirgate");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("fhirgate {args:?} did not become ready");
        }
    };
    let ready = serde_json::from_str(&line).unwrap_or_else(|e| {
        let status = child.try_wait();
        panic!("fhirgate {args:?} printed {line:?} ({e}); exit status {status:?}")
    });
    Running { process: Process::Child(child), ready }
}

/// The demo: demo provider + gateway with the demo partner, as `fhirgate
/// demo --json --listen 127.0.0.1:0` runs it, in this process.
pub fn demo() -> Running {
    in_process("the demo".into(), |ready, stop| async move {
        let policy = repo_root().join("policies/demo/policy.toml");
        let demo = fhirgate_devtools::demo::Demo::start(Some(&policy), "127.0.0.1:0".parse()?).await?;
        let _ = ready.send(demo.facts.clone());
        demo.serve(async {
            let _ = stop.await;
        })
        .await
    })
}

impl Running {
    /// The process id, to watch its resources: the child's, or this
    /// process's for one served in it.
    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::InProcess(..) => std::process::id(),
        }
    }

    /// The ready line, whole.
    pub fn facts(&self) -> &Value {
        &self.ready
    }

    pub fn get(&self, key: &str) -> String {
        self.ready[key].as_str().unwrap_or_else(|| panic!("no `{key}` in {}", self.ready)).to_owned()
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client")
}

/// One client kept for the whole run, its connections reused: for polling
/// a gateway in a loop, where a new client (a thread, a runtime and a
/// connection) per poll would cost more than the poll.
/// A client whose connections come from `addr` (any 127.0.0.0/8 address
/// is this machine), for what the gateway counts per client address.
pub fn http_from(addr: [u8; 4]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from(addr))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

pub fn polling_http() -> &'static reqwest::blocking::Client {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(http)
}

/// A token for the demo client, through the token endpoint with
/// `client_secret_post`.
pub fn token(demo: &Running) -> String {
    let resp = http()
        .post(demo.get("token_url"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &demo.get("client_id")),
            ("client_secret", &demo.get("client_secret")),
            ("scope", &demo.get("tenant_id")),
        ])
        .send()
        .expect("token request");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().expect("token JSON");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// Asserts `body` is an OperationOutcome with at least one issue, and returns
/// its first diagnostics.
pub fn assert_outcome(body: &Value) -> String {
    assert_eq!(body["resourceType"], "OperationOutcome", "not an OperationOutcome: {body}");
    let issue = &body["issue"][0];
    assert!(issue["severity"].is_string() && issue["code"].is_string(), "bad issue: {body}");
    issue["diagnostics"].as_str().unwrap_or_default().to_owned()
}

/// The OperationOutcomes a test receives: each checked as it comes (see
/// [`assert_outcome`]), all validated in their face's FHIR version at the
/// end by [`Outcomes::validate`], one validator run per face.
#[derive(Default)]
pub struct Outcomes(Vec<(&'static str, Value)>);

impl Outcomes {
    /// Checks `body` is an OperationOutcome and keeps it for validation in
    /// `face` (`stu3` or `dstu2`); its diagnostics.
    pub fn check(&mut self, face: &'static str, body: Value) -> String {
        let diagnostics = assert_outcome(&body);
        self.0.push((face, body));
        diagnostics
    }

    /// Validates every outcome kept.
    pub fn validate(self) {
        for face in ["stu3", "dstu2"] {
            let bodies: Vec<(String, Value)> = self
                .0
                .iter()
                .enumerate()
                .filter(|(_, (f, _))| *f == face)
                .map(|(i, (_, body))| (format!("outcome-{i}"), body.clone()))
                .collect();
            if !bodies.is_empty() {
                validate_fhir_all(face, &bodies);
            }
        }
    }
}

/// Sha256 hex of a file, for writing pinned policies.
pub fn sha256(path: &Path) -> String {
    fhirgate_core::digest::sha256_hex(&std::fs::read(path).expect("reading module"))
}

/// Starts the demo provider alone and returns it with its base URL.
pub fn provider() -> (Running, String) {
    provider_with(&[])
}

/// Starts the demo provider with extra `args` (`--patients`, `--delay-ms`,
/// `--request-log`, `--client-credentials`, …) and returns it with its base
/// URL. It listens on a free port unless `args` has `--listen`: to restart a
/// provider on the same port, drop the first and pass
/// `["--listen", &first.get("address")]`.
pub fn provider_with(args: &[&str]) -> (Running, String) {
    let mut all = vec!["provider", "--json"];
    if !args.iter().any(|a| *a == "--listen" || a.starts_with("--listen=")) {
        all.extend(["--listen", "127.0.0.1:0"]);
    }
    all.extend_from_slice(args);
    let p = start(&all);
    let base = p.get("base_url");
    (p, base)
}

/// A gateway started with `fhirgate serve` on a configuration written for the
/// test. `router` names the routing module; `routes` is the router's tenant
/// table; `tenants` the policy's approved tenants → provider ids;
/// `providers` (id, base URL). The client `app` with secret `secret` may ask
/// for every tenant in `client_tenants`. `provider_settings` is TOML added
/// to every provider's table (it may set `timeout_ms`, default 2000 here).
/// `data_dir` keeps the store in the test's directory; `admin_token` enables
/// the admin API with that bearer token.
#[derive(Default)]
pub struct Setup<'a> {
    pub router: &'a str,
    /// More keys of `[modules.routing]` (`reuse = 0`, say).
    pub router_settings: &'a str,
    pub routes: &'a [(&'a str, &'a str)],
    pub tenants: &'a [(&'a str, &'a str)],
    pub providers: &'a [(&'a str, &'a str)],
    pub client_tenants: &'a [&'a str],
    pub extra_config: &'a str,
    pub provider_settings: &'a str,
    /// Appended to the policy file as written (more `[providers.…]`, say).
    pub extra_policy: &'a str,
    /// More keys of the `[admin]` table (with `admin_token`).
    pub admin_extra: &'a str,
    pub data_dir: bool,
    pub admin_token: Option<&'a str>,
    /// The admin API without a shared token: only users sign in.
    pub people_only_admin: bool,
    /// Provider id → FHIR version (`r4` when not listed).
    pub versions: &'a [(&'a str, &'a str)],
}

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnopqrstuv";

/// The bearer token a [`Setup`] gateway's metrics scraper sends.
pub const METRICS_TOKEN: &str = "metrics-scraper-token-0123456789abcdef";

/// The metrics of the gateway at `base`, as its scraper reads them.
pub fn metrics(base: &str) -> String {
    let resp = http().get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().expect("metrics");
    assert_eq!(resp.status(), 200, "metrics refused");
    resp.text().expect("metrics text")
}

pub struct Served {
    pub running: Running,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl Setup<'_> {
    /// The gateway, served in this process.
    pub fn serve(&self) -> Served {
        let (dir, config_path) = self.write();
        let running = serve_config(&config_path);
        let base = format!("http://{}", running.get("address"));
        Served { running, base, dir }
    }

    /// The gateway as the `fhirgate serve` process, for measuring it alone.
    pub fn serve_binary(&self) -> Served {
        let (dir, config_path) = self.write();
        let running = start(&["serve", "--json", "--listen", "127.0.0.1:0", "--config", config_path.to_str().unwrap()]);
        let base = format!("http://{}", running.get("address"));
        Served { running, base, dir }
    }

    /// The `fhirgate serve` process with `flags`, logging at `level` into
    /// `stderr`.
    pub fn serve_binary_logging(&self, flags: &[&str], level: &str, stderr: Stdio) -> Served {
        let (dir, config_path) = self.write();
        let mut args = vec!["serve", "--json", "--listen", "127.0.0.1:0", "--config", config_path.to_str().unwrap()];
        args.extend_from_slice(flags);
        let running = start_with(&args, level, stderr);
        let base = format!("http://{}", running.get("address"));
        Served { running, base, dir }
    }

    /// The `fhirgate serve` process with at most `descriptors` open files.
    pub fn serve_binary_limited(&self, descriptors: u32) -> Served {
        let (dir, config_path) = self.write();
        let args = ["serve", "--json", "--listen", "127.0.0.1:0", "--config", config_path.to_str().unwrap()];
        let running = start_limited(&args, descriptors);
        let base = format!("http://{}", running.get("address"));
        Served { running, base, dir }
    }

    /// The policy and configuration in a new directory; the configuration's
    /// path.
    fn write(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let module = |name: &str| {
            let p = guest(name);
            format!("path = {:?}\nsha256 = {:?}\n", p.display().to_string(), sha256(&p))
        };
        let mut policy = String::from("schema_version = 1\npartner = \"test\"\n\n");
        policy += &format!("[modules.token-validation]\n{}\n", module("fhirgate_token_jwt"));
        let router = if self.router.is_empty() { "fhirgate_router_table" } else { self.router };
        policy += &format!(
            "[modules.routing]\n{}{}\n[modules.routing.config.tenants]\n",
            module(router),
            self.router_settings
        );
        for (t, p) in self.routes {
            policy += &format!("{t:?} = {p:?}\n");
        }
        policy += &format!("\n[modules.shaping]\n{}\n", module("fhirgate_shaper_fhir"));
        for (id, url) in self.providers {
            let timeout = if self.provider_settings.contains("timeout_ms") { "" } else { "timeout_ms = 2000\n" };
            let version = self.versions.iter().find(|(p, _)| p == id).map(|(_, v)| *v).unwrap_or("r4");
            policy += &format!(
                "[providers.{id}]\nbase_url = {url:?}\nfhir_version = {version:?}\n{timeout}{}\n\n",
                self.provider_settings
            );
        }
        for (t, p) in self.tenants {
            policy += &format!("[tenants.{t:?}]\nproviders = [{p:?}]\n\n");
        }
        policy += self.extra_policy;
        std::fs::write(dir.path().join("policy.toml"), policy).expect("policy");
        let tenants: Vec<String> = self.client_tenants.iter().map(|t| format!("{t:?}")).collect();
        let mut extra = String::new();
        if self.data_dir {
            extra += &format!("data_dir = {:?}\n", dir.path().join("data").display().to_string());
        }
        if !self.extra_config.contains("public_url") {
            // As an operator of a gateway on loopback would: any port, since
            // the test's gateway listens on a free one.
            extra += "accepted_hosts = [\"127.0.0.1\"]\n";
        }
        extra += self.extra_config;
        if let Some(token) = self.admin_token {
            extra += &format!("\n[admin]\ntoken_sha256 = {:?}\n{}\n", sha256_str(token), self.admin_extra);
        } else if self.people_only_admin {
            extra += &format!("\n[admin]\n{}\n", self.admin_extra);
        }
        extra += &format!("\n[metrics]\ntoken_sha256 = {:?}\n", sha256_str(METRICS_TOKEN));
        let config = format!(
            "schema_version = 1\npolicy = \"policy.toml\"\n{}\n\n[[clients]]\nclient_id = \"app\"\nsecret_sha256 = {:?}\ntenants = [{}]\n",
            extra,
            sha256_str(SECRET),
            tenants.join(", ")
        );
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, config).expect("config");
        (dir, config_path)
    }
}

/// Runs `fhirgate <args>` to the end: whether it succeeded, and what it
/// printed (stdout, then stderr).
pub fn run_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(args)
        .current_dir(repo_root())
        .env("FHIRGATE_LOG", "warn")
        .output()
        .expect("running fhirgate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs `fhirgate <args>`, which must succeed, and returns the JSON it
/// printed on stdout (log lines on stderr follow it).
pub fn cli_json(args: &[&str]) -> Value {
    let (ok, text) = run_cli(args);
    assert!(ok, "{args:?}: {text}");
    serde_json::Deserializer::from_str(&text).into_iter().next().expect("JSON on stdout").expect("JSON")
}

/// The request log a provider wrote with `--request-log`.
pub fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("log line is JSON"))
        .collect()
}

/// `method url` on an admin API with bearer `token` (and a JSON body):
/// the status and the JSON answer.
pub fn admin_call(token: &str, method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// A personal API token for a new user `name` with `role`: the user made
/// through the admin API of `gw` with the admin token `admin`, the token
/// issued on the gateway's data directory (only the user themselves may
/// issue one through the API).
pub fn user_token(gw: &Served, admin: &str, name: &str, role: &str) -> String {
    let users = format!("{}/admin/users", gw.base);
    let (status, body) = admin_call(
        admin,
        reqwest::Method::POST,
        &users,
        Some(serde_json::json!({ "username": name, "roles": [role] })),
    );
    assert_eq!(status, 201, "{body}");
    let data = gw.dir.path().join("data");
    let out =
        cli_json(&["user", "--data-dir", data.to_str().unwrap(), "token", name, "--label", "test", "--days", "1"]);
    out["token"].as_str().unwrap().to_owned()
}

/// A decision (`approve` or `reject`) on the mapping at URL `mapping`, made
/// with `token`.
pub fn decide(token: &str, mapping: &str, action: &str, body: Value) -> (u16, Value) {
    admin_call(token, reqwest::Method::POST, &format!("{mapping}/{action}"), Some(body))
}

/// Runs `fhirgate <args>` with `input` on its standard input; it must
/// succeed.
pub fn cli_with_input(args: &[&str], input: &str) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(args)
        .current_dir(repo_root())
        .env("FHIRGATE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running fhirgate");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writing stdin");
    let out = child.wait_with_output().expect("fhirgate finished");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn sha256_str(s: &str) -> String {
    fhirgate_core::digest::sha256_hex(s.as_bytes())
}

impl Served {
    pub fn token(&self, tenant: &str) -> String {
        let resp = http()
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth("app", Some(SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", tenant)])
            .send()
            .expect("token request");
        assert_eq!(resp.status(), 200, "token refused: {:?}", resp.text());
        let body: Value = resp.json().expect("token JSON");
        body["access_token"].as_str().expect("access_token").to_owned()
    }
}

/// The Python interpreter of the test virtualenv (the README's test command
/// creates it in `target/py`).
pub fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let py = target.join("py/bin/python");
    assert!(
        py.exists(),
        "{} is missing: create it with `python3 -m venv target/py && target/py/bin/pip install -r tests/requirements.txt`",
        py.display()
    );
    py
}

/// Validates `resource` with an independent FHIR library (the `fhir.resources`
/// models of `version`: `r4`, `stu3` or `dstu2`); panics with its errors.
pub fn validate_fhir(version: &str, resource: &Value) {
    use std::io::Write as _;
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/python/validate_fhir.py"))
        .args(["--version", version, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the FHIR validator");
    child.stdin.take().expect("stdin").write_all(resource.to_string().as_bytes()).expect("writing to the validator");
    let out = child.wait_with_output().expect("running the FHIR validator");
    assert!(
        out.status.success(),
        "the FHIR validator refused the resource:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates many resources of one FHIR version in one run of the
/// independent validator; panics naming each that does not parse.
pub fn validate_fhir_all(version: &str, resources: &[(String, Value)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (i, (name, resource)) in resources.iter().enumerate() {
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(80).collect();
        let path = dir.path().join(format!("{i:03}-{safe}.json"));
        std::fs::write(&path, resource.to_string()).expect("writing a resource");
        files.push(path);
    }
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/validate_fhir.py"))
        .args(["--version", version])
        .args(&files)
        .output()
        .expect("running the FHIR validator");
    assert!(
        out.status.success(),
        "the FHIR validator refused {version} resources:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
