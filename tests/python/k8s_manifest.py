"""Reads deploy/kubernetes/fhirgate.yaml as Kubernetes would: writes the
ConfigMap's files into a directory and prints, as JSON, what the test checks
of the rest (the Secret's variables, the Deployment's replicas, probes,
ports and arguments, the disruption budget)."""

import json
import pathlib
import sys

import yaml


def main(manifest: str, out: str) -> None:
    docs = [d for d in yaml.safe_load_all(pathlib.Path(manifest).read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    for name, text in by_kind["ConfigMap"]["data"].items():
        (pathlib.Path(out) / name).write_text(text)
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    print(json.dumps({
        "env": by_kind["Secret"]["stringData"],
        "replicas": by_kind["Deployment"]["spec"]["replicas"],
        "args": container["args"],
        "port": container["ports"][0]["containerPort"],
        "readiness": container["readinessProbe"]["httpGet"]["path"],
        "liveness": container["livenessProbe"]["httpGet"]["path"],
        "config_mount": container["volumeMounts"][0]["mountPath"],
        "env_from": [e["secretRef"]["name"] for e in container["envFrom"]],
        "secret_name": by_kind["Secret"]["metadata"]["name"],
        "min_available": by_kind["PodDisruptionBudget"]["spec"]["minAvailable"],
        "service_target": by_kind["Service"]["spec"]["ports"][0]["targetPort"],
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
