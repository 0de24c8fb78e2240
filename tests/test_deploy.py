"""What can be checked of the deployment files without a container engine: they parse,
they point at what exists, the dashboard queries metrics the server really exports, and
the image installs what the README installs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

from tests.conftest import Api

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def test_compose_services_and_paths() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api", "console", "postgres", "prometheus", "grafana"} <= set(services)
    for name in ("api", "console"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["api"]["command"][:4] == ["python", "-m", "router", "serve"]
    assert services["console"]["command"][:4] == ["python", "-m", "router", "console"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and name != "triton":
                assert (DEPLOY / source).exists(), f"compose mounts a missing path {source}"
    triton = services["triton"]
    assert triton["profiles"] == ["triton"]
    assert "./triton:/models:ro" in triton["volumes"] and (DEPLOY / "triton" / "prompt_classifier").is_dir()
    # The model file is the artifact's fp32 export (not the per-batch-quantized int8 one), mounted where
    # config.pbtxt expects version 1.
    assert "../models/prompt-classifier/model-fp32.onnx:/models/prompt_classifier/1/model.onnx:ro" in triton["volumes"]
    gpu = triton["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert services["api"]["environment"]["ROUTER_TRITON_URL"] == "triton:8000"


def test_prometheus_scrapes_the_api() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["api:8000"]


def test_dashboard_queries_metrics_the_server_exports(sqlite_api: Api) -> None:
    httpx.post(f"{sqlite_api.base_url}/chat/completions",
               json={"stream": True, "messages": [{"role": "user", "content": "Hello!"}]})
    exported = httpx.get(f"{sqlite_api.url}/metrics").text
    names = set(re.findall(r"^(router_[a-z_]+)", exported, re.MULTILINE))
    # Families without samples yet (no fallback has happened) still declare their type.
    for family, kind in re.findall(r"^# TYPE (router_[a-z_]+) (\w+)", exported, re.MULTILINE):
        names |= {"counter": {family, family + "_total"}, "histogram": {family + "_bucket"}}.get(kind, {family})
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "router.json").read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in ("Routing distribution", "Cost vs all-to-baseline", "latency p50", "Router overhead"):
        assert any(wanted in t for t in titles), wanted
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"router_[a-z_]+", t["expr"])}
    missing = used - names
    assert used and not missing, f"dashboard queries metrics the server does not export: {missing}"
    assert 'router_requests_total{policy="task-complexity",status="ok",task="Chatbot",tier="llama-3-70b"} 1.0' in \
        exported


def test_dockerfile_installs_what_the_readme_installs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    install = "pip install -c constraints.txt -e ."
    assert install in dockerfile
    assert install in readme.splitlines()[3]  # the README's first command installs what the image does
    for path in ("router/", "storage/", "pages/", "config/", "models/", ".streamlit/", "app.py", "alembic.ini",
                 "pyproject.toml", "constraints.txt"):
        assert path in dockerfile, f"the image lacks {path}"
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
