//! The Kubernetes manifests in `deploy/kubernetes/` are valid against
//! Kubernetes' own schemas (strict: no unknown fields), and what they deploy
//! works: the ConfigMap's gateway.toml and policy.toml, with the Secret's
//! variables pointing at a real PostgreSQL, serve, answer the probes the
//! Deployment names on the port it names, and three replicas keep two
//! through a voluntary disruption.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{http, python, repo_root};

const MANIFEST: &str = "deploy/kubernetes/fhirgate.yaml";

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let validator = python().with_file_name("kubernetes-validate");
    let out = Command::new(&validator).args(["--strict", MANIFEST]).current_dir(repo_root()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for kind in ["configmap", "secret", "deployment", "service", "poddisruptionbudget"] {
        assert!(text.contains(&format!("passed for resource {kind}/fhirgate")), "{kind} not checked: {text}");
    }
    // A mistake is caught: the check can fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let manifest = std::fs::read_to_string(repo_root().join(MANIFEST)).unwrap();
    std::fs::write(&bad, manifest.replace("  replicas: 3", "  replicas: \"3\"\n  replica: 3")).unwrap();
    assert!(!Command::new(&validator).arg("--strict").arg(&bad).output().unwrap().status.success());
}

#[test]
fn what_the_manifests_deploy_serves_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python())
        .args(["tests/python/k8s_manifest.py", MANIFEST, dir.path().to_str().unwrap()])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["replicas"], 3);
    assert!(facts["min_available"].as_i64().unwrap() < 3, "a node drain can proceed");
    assert_eq!((facts["readiness"].as_str(), facts["liveness"].as_str()), (Some("/readyz"), Some("/livez")));
    assert_eq!(facts["env_from"][0], facts["secret_name"]);
    assert_eq!(facts["service_target"], "http");
    let args: Vec<&str> = facts["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let mount = facts["config_mount"].as_str().unwrap();
    assert_eq!(&args[..3], ["serve", "--config", &format!("{mount}/gateway.toml")]);
    let config = std::fs::read_to_string(dir.path().join("gateway.toml")).unwrap();
    assert!(config.contains(&format!("listen = \"0.0.0.0:{}\"", facts["port"])), "{config}");
    let env = facts["env"].as_object().unwrap();
    assert!(env.contains_key("FHIRGATE_DATABASE_URL") && env.contains_key("FHIRGATE_KEK"));

    // As a pod runs it: the Secret's variables (the database a real one), the
    // arguments with the file where the ConfigMap put it, on a free port.
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fhirgate_store::testing::Cluster::shared().database())
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fhirgate"));
    let config_path = dir.path().join("gateway.toml");
    let mut pod_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    pod_args[2] = config_path.display().to_string();
    pod_args.extend(["--listen".into(), "127.0.0.1:0".into(), "--json".into()]);
    command
        .args(&pod_args)
        .env("FHIRGATE_KEK", env["FHIRGATE_KEK"].as_str().unwrap())
        .env("FHIRGATE_DATABASE_URL", &url)
        .env("FHIRGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let ready = {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    };
    let base = format!("http://{}", ready["address"].as_str().unwrap());
    let probe = |path: &str| http().get(format!("{base}{path}")).send().unwrap().status().as_u16();
    let (live, readiness) = (probe("/livez"), probe("/readyz"));
    let metadata = http().get(format!("{base}/stu3/metadata")).header("host", "fhirgate.example.org").send().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((live, readiness), (200, 200));
    assert_eq!(metadata.status(), 200);
    let metadata: Value = metadata.json().unwrap();
    assert!(metadata.to_string().contains("https://fhirgate.example.org/oauth2/token"), "{metadata}");
}
