"""deploy/k8s: every manifest is valid against the Kubernetes schemas (kubernetes-validate,
strict), the kustomizations name files that exist, the parts the deployment relies on are there
(health probes, the autoscaler, the GPU request, the database Secret), and both overlays render
with `kubectl kustomize` into valid manifests. None of it has been applied to a cluster here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
VERSION = "1.32.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifests() -> dict[str, dict[str, Any]]:
    """kind/name -> document, across every non-kustomization file."""
    out = {}
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            for d in documents(path):
                out[f"{d['kind']}/{d['metadata']['name']}"] = d
    return out


@pytest.mark.parametrize("path", sorted(p.relative_to(K8S).as_posix() for p in K8S.rglob("*.yaml")
                                        if p.name != "kustomization.yaml"))
def test_every_manifest_is_valid_against_the_schemas(path: str) -> None:
    for document in documents(K8S / path):
        kubernetes_validate.validate(document, VERSION, strict=True)


def test_kustomizations_name_files_that_exist() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for resource in spec["resources"]:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource} is missing"


def test_the_api_is_probed_scaled_and_reads_its_database_from_a_secret() -> None:
    m = manifests()
    api = m["Deployment/router-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health?tiers=0"
    assert "livenessProbe" in api
    env = {e["name"]: e for e in api["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "router-db", "key": "DATABASE_URL"}
    hpa = m["HorizontalPodAutoscaler/router-api"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "router-api" and hpa["minReplicas"] >= 2
    triton = m["Deployment/router-triton"]["spec"]["template"]["spec"]["containers"][0]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    scrape = m["ConfigMap/router-prometheus"]["data"]["prometheus.yml"]
    assert "prometheus_io_scrape" in scrape
    assert m["StatefulSet/router-postgres"]  # the dev overlay's database
    production = yaml.safe_load((K8S / "overlays" / "production" / "kustomization.yaml").read_text())
    assert not any("postgres" in r for r in production["resources"])


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_overlays_render_with_kubectl(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl renders the overlays (`kubectl kustomize`): this machine image ships it; install it"
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    for document in rendered:
        kubernetes_validate.validate(document, VERSION, strict=True)
    kinds = {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered}
    namespace = kinds[next(k for k in kinds if k.startswith("Namespace/"))]["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for d in rendered if d["kind"] != "Namespace")
    api_env = {e["name"]: e.get("value") for e in
               kinds["Deployment/router-api"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert api_env["ROUTER_AUTH"] == ("off" if overlay == "dev" else "keys")
    assert ("StatefulSet/router-postgres" in kinds) == (overlay == "dev")
