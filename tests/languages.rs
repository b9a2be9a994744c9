//! Modules written in JavaScript and Python, built with the Bytecode
//! Alliance's toolchains as a partner would (`tests/setup.sh` installs them:
//! componentize-js in `guest/js/node_modules`, componentize-py in the test
//! virtualenv): the twins of the default routers pass the Rust routers'
//! cases, a module of each role scaffolded in each language builds and passes
//! its own, and a JavaScript router swapped into a running gateway serves
//! while its faults (an exception, a runaway loop) are contained as a Rust
//! module's are.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Setup, http, provider};

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
const OTHER: &str = "8e1c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11";
const ADMIN: &str = "admin-token-for-language-tests-0123456789";

/// `fhirgate <args>` run in `dir`: exit code and standard output (the
/// output shown when the command fails).
fn fhirgate_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(args)
        .current_dir(dir)
        .env("FHIRGATE_LOG", "off")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A toolchain the test script installed: the directory `dir` (relative to
/// the repository) holding `probe`.
fn toolchain(dir: &str, probe: &str) -> PathBuf {
    let dir = support::repo_root().join(dir);
    assert!(dir.join(probe).exists(), "{probe} is missing in {}: run `bash tests/setup.sh`", dir.display());
    dir
}

/// The JavaScript toolchain: componentize-js in `guest/js/node_modules`.
fn js_toolchain() -> PathBuf {
    toolchain("guest/js/node_modules", "@bytecodealliance/componentize-js")
}

/// The virtualenv with componentize-py.
fn python_toolchain() -> PathBuf {
    toolchain("target/py", "bin/componentize-py")
}

/// Runs `command` in a shell in `dir`, which must succeed; its output.
fn shell(dir: &Path, command: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(command).current_dir(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`{command}` in {} failed:\n{text}", dir.display());
    text
}

/// `fhirgate guest test` of `module` against `cases`, which must all pass.
fn passes(module: &Path, cases: &Path, extra: &[&str]) -> String {
    let mut args = vec!["guest", "test", module.to_str().unwrap(), cases.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, out) = fhirgate_in(&support::repo_root(), &args);
    let count = std::fs::read_dir(cases).unwrap().count();
    assert_eq!(code, 0, "{} failed its cases:\n{out}", module.display());
    assert!(out.contains(&format!("{count} cases: {count} passed, 0 failed")), "{out}");
    out
}

#[test]
fn javascript_and_python_twins_pass_the_rust_routers_cases() {
    js_toolchain();
    python_toolchain();
    let root = support::repo_root();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    shell(&root, &format!("node guest/js/build.mjs {dir}"));
    shell(&root, &format!("bash guest/python/build.sh {dir}"));
    for (module, cases) in [
        ("fhirgate_router_table_js.wasm", "guest/router-table/cases"),
        ("fhirgate_router_table_py.wasm", "guest/router-table/cases"),
        ("fhirgate_router_rules_js.wasm", "guest/router-rules/cases"),
    ] {
        let module = out.path().join(module);
        let size = std::fs::metadata(&module).unwrap().len();
        passes(&module, &root.join(cases), &[]);
        println!("{}: {:.1} MB, passes {cases}", module.file_name().unwrap().to_str().unwrap(), size as f64 / 1e6);
    }
}

/// Every file under `root` but its toolchain links: none may point back
/// into the source tree.
fn assert_standalone(root: &Path) {
    let tree = support::repo_root().display().to_string();
    let files = support::files_under(root);
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains(&tree), "{} points into {tree}", path.display());
    }
    let seen = files.len();
    assert!(seen >= 10, "{}: only {seen} files", root.display());
}

/// The line of `guest new`'s output that starts with `label`, after the
/// `cd …&&` it starts with.
fn command_line(out: &str, label: &str) -> String {
    let line = out.lines().find_map(|l| l.strip_prefix(label)).unwrap_or_else(|| panic!("no {label:?} line:\n{out}"));
    let line = line.trim();
    line.split_once(" && ").map_or(line, |(_, command)| command).to_owned()
}

/// Scaffolds `name` of `role` in `lang` in `dir`, gives it the installed
/// toolchain in place of its set-up step, builds it with the command `guest
/// new` printed and runs its cases; its directory and component.
fn scaffold_build_test(dir: &Path, name: &str, role: &str, lang: &str) -> (PathBuf, PathBuf) {
    let (code, out) = fhirgate_in(dir, &["guest", "new", name, "--role", role, "--lang", lang]);
    assert_eq!(code, 0, "{out}");
    let root = dir.join(name);
    assert_standalone(&root);
    // Its set-up step (`npm install`, a virtualenv from requirements.txt)
    // installs the toolchain this suite already has.
    match lang {
        "js" => std::os::unix::fs::symlink(js_toolchain(), root.join("node_modules")).unwrap(),
        _ => std::os::unix::fs::symlink(python_toolchain(), root.join(".venv")).unwrap(),
    }
    if lang == "js" {
        // Its types check against the SDK's declarations (`sdk/fhirgate.d.ts`).
        shell(&root, "npm run --silent check");
    }
    let started = Instant::now();
    shell(&root, &command_line(&out, "build:"));
    let built = started.elapsed();
    let test = command_line(&out, "test:");
    let module = root.join(test.split_whitespace().nth(3).unwrap());
    let tested = passes(&module, &root.join("cases"), &[]);
    println!(
        "{lang} {role}: built in {:.1} s, {:.1} MB; {}",
        built.as_secs_f64(),
        std::fs::metadata(&module).unwrap().len() as f64 / 1e6,
        tested.lines().last().unwrap_or_default()
    );
    (root, module)
}

/// The scaffolded router's logic in TypeScript, typed by the SDK's
/// declarations.
const TS_ROUTER: &str = r#"import { activeProviders, config, deny, fhir, guarded, sameTenant } from '../sdk/fhirgate.js';
import type { Claims, Request, Routing, Target } from '../sdk/fhirgate.js';

function table(): Record<string, string> {
  const { tenants = {}, ...unknown } = config();
  const extra = Object.keys(unknown)[0];
  if (extra !== undefined) throw deny(500, 'module-config', `unknown field \`${extra}\``);
  if (tenants === null || typeof tenants !== 'object' || !Object.values(tenants).every((p) => typeof p === 'string')) {
    throw deny(500, 'module-config', '`tenants` must map tenant ids to provider ids.');
  }
  return tenants as Record<string, string>;
}

export const routing: Routing = guarded({
  route(claims: Claims, request: Request): Target {
    const listed = Object.entries(table()).find(([tenant]) => sameTenant(tenant, claims.tenantId));
    const providerId = listed ? listed[1] : activeProviders(claims.tenantId)[0]?.id;
    if (providerId === undefined) throw deny(403, 'unknown-tenant', "No provider for this token's tenant.");
    const path = fhir.passThroughPath(request);
    if (path === undefined) throw deny(405, 'not-supported', 'Only reads and searches are routed.');
    return { providerId, path, params: request.params, headers: [] };
  },
});
"#;

#[test]
fn a_module_of_each_role_scaffolded_in_javascript_and_python_builds_and_passes_its_cases() {
    let work = tempfile::tempdir().unwrap();
    for lang in ["js", "python"] {
        for role in ["router", "validator", "shaper"] {
            scaffold_build_test(work.path(), &format!("{lang}-{role}"), role, lang);
        }
    }
    // The router in TypeScript: compiled with `tsc` (strict) against the
    // SDK's declarations, then built as JavaScript; the same cases pass.
    let root = work.path().join("js-router");
    std::fs::write(root.join("src/router.ts"), TS_ROUTER).unwrap();
    shell(
        &root,
        "node_modules/.bin/tsc --strict --target es2022 --module nodenext --rootDir src --outDir build src/router.ts",
    );
    shell(
        &root,
        "node_modules/.bin/componentize-js build/router.js --wit sdk/wit --world-name router -o ts.wasm -d http fetch-event",
    );
    passes(&root.join("ts.wasm"), &root.join("cases"), &[]);
    // A name or an SDK crate that does not fit is refused, and nothing made.
    let (code, out) = fhirgate_in(work.path(), &["guest", "new", "Bad_Name", "--role", "router", "--lang", "js"]);
    assert_ne!(code, 0, "{out}");
    let (code, out) =
        fhirgate_in(work.path(), &["guest", "new", "x", "--role", "router", "--lang", "python", "--sdk", "."]);
    assert_ne!(code, 0, "{out}");
    assert!(!work.path().join("x").exists());
}

/// The scaffolded JavaScript router with two faults a partner could ship,
/// chosen by the `_misbehave` parameter: an exception (a property of
/// `undefined`) and a loop that never ends.
fn faulty_js_router(dir: &Path) -> PathBuf {
    let (code, out) = fhirgate_in(dir, &["guest", "new", "js-router", "--role", "router", "--lang", "js"]);
    assert_eq!(code, 0, "{out}");
    let source = dir.join("js-router/src/router.js");
    let text = std::fs::read_to_string(&source).unwrap();
    let hook = "  route(claims, request) {\n";
    assert!(text.contains(hook), "{text}");
    let faults = "    const mode = request.params.find((p) => p.name === '_misbehave')?.value;\n\
                  \x20   if (mode === 'throw') {\n      const missing = undefined;\n      return missing.providerId;\n    }\n\
                  \x20   if (mode === 'loop') {\n      for (;;) {}\n    }\n";
    std::fs::write(&source, text.replace(hook, &format!("{hook}{faults}"))).unwrap();
    std::os::unix::fs::symlink(js_toolchain(), dir.join("js-router/node_modules")).unwrap();
    shell(&dir.join("js-router"), &command_line(&out, "build:"));
    dir.join("js-router/js_router.wasm")
}

#[test]
fn a_javascript_router_swapped_into_a_running_gateway_serves_and_its_faults_are_contained() {
    let work = tempfile::tempdir().unwrap();
    let module = faulty_js_router(work.path());
    let (_provider, base) = provider();
    let log_path = work.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let routes = [(TENANT, "a"), (OTHER, "a")];
    let gw = Setup {
        routes: &routes,
        tenants: &routes,
        providers: &[("a", &base)],
        client_tenants: &[TENANT, OTHER],
        // A JavaScript engine needs more room than the [wasm] defaults give
        // a Rust module; these stay when a module is uploaded.
        router_settings: "memory_mib = 128\ncall_timeout_ms = 1000\n",
        admin_token: Some(ADMIN),
        data_dir: true,
        ..Default::default()
    }
    .serve_binary_logging(&[], "warn", log.into());
    let (token, other) = (gw.token(TENANT), gw.token(OTHER));
    let read = |token: &str, query: &str| {
        http().get(format!("{}/stu3/Patient/pat-001{query}", gw.base)).bearer_auth(token).send().unwrap()
    };
    assert_eq!(read(&token, "").status(), 200);

    // Swapped in while the gateway serves.
    let digest = support::sha256(&module);
    let started = Instant::now();
    // Compiling 12 MB in a debug build, on a machine also building modules:
    // a generous timeout.
    let patient = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let resp = patient
        .put(format!("{}/admin/modules/routing?name=js-router&sha256={digest}", gw.base))
        .bearer_auth(ADMIN)
        .body(std::fs::read(&module).unwrap())
        .send()
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert_eq!(status, 200, "{body}");
    println!("a 12 MB JavaScript router checked and activated in {:?}", started.elapsed());
    let routing = body["modules"].as_array().unwrap().iter().find(|m| m["role"] == "routing").unwrap();
    assert_eq!(routing["digest"], digest, "{body}");
    for t in [&token, &other] {
        let resp = read(t, "");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().unwrap()["id"], "pat-001");
    }

    // An exception: a 500 OperationOutcome, its message nowhere in it; a
    // loop: stopped at the module's own time limit. The next requests, of
    // both tenants, are served.
    let resp = read(&token, "?_misbehave=throw");
    assert_eq!(resp.status(), 500);
    let text = resp.text().unwrap();
    let diag = support::assert_outcome(&serde_json::from_str(&text).unwrap());
    assert!(diag.contains("routing module") && diag.contains("trapped"), "{diag}");
    assert!(!text.contains("TypeError") && !text.contains("router.js"), "the app saw the exception: {text}");
    let started = Instant::now();
    let resp = read(&token, "?_misbehave=loop");
    let took = started.elapsed();
    assert_eq!(resp.status(), 500);
    let diag = support::assert_outcome(&resp.json().unwrap());
    assert!(diag.contains("time limit"), "{diag}");
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(10), "{took:?}");
    for t in [&token, &other] {
        assert_eq!(read(t, "").status(), 200);
    }

    // The exception's message and place reach the log, never a token.
    let t0 = Instant::now();
    let logged = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("TypeError") || t0.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(logged.contains("TypeError") && logged.contains("src/router.js:"), "not in the log:\n{logged}");
    assert!(!logged.contains(&token), "a token was logged");
    let metrics = support::metrics(&gw.base);
    for outcome in ["trap", "timeout"] {
        let counted = metrics.lines().any(|l| {
            l.starts_with("fhirgate_module_calls_total{")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.contains(&digest)
        });
        assert!(counted, "no {outcome} of the JavaScript module counted:\n{metrics}");
    }
}
