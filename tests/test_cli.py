"""The commands as a user runs them: `python -m router serve` with no configuration
(built-in simulator, SQLite file), and `python -m router policy ...`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import free_port, run_cli, wait_until_up

ROOT = Path(__file__).resolve().parent.parent




def test_serve_works_offline_with_no_configuration(tmp_path: Path, clean_env: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--port", str(port)], cwd=tmp_path,
                            env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health?tiers=0", proc)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(model="router",
                                               messages=[{"role": "user", "content": "Hello there!"}])
        assert "simulated answer from meta/llama3-70b-instruct" in reply.choices[0].message.content
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert all(t["simulated"] and t["reachable"] for t in health["tiers"].values())
        assert health["database"]["location"] == f"SQLite {tmp_path / 'router.db'}"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert "NVIDIA_API_KEY" not in output or "no API key set" in output
    assert (tmp_path / "router.db").exists()


def test_policy_commands(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    policy_yaml = tmp_path / "cheap.yaml"
    policy_yaml.write_text(
        "name: cheap\n"
        "tiers:\n"
        "  small: {model: m-small, base_url: 'http://127.0.0.1:9/v1', price_in: 0.01, price_out: 0.02}\n"
        "  large: {model: m-large, base_url: 'http://127.0.0.1:9/v1', price_in: 1, price_out: 2}\n"
        "default_tier: small\n"
        "rules:\n"
        "  - {name: hard, complexity: {min: 0.5}, tier: large}\n")
    out = run_cli("policy", "add", str(policy_yaml), "--comment", "first", "--activate", cwd=tmp_path, env=env)
    assert out.returncode == 0 and "saved cheap v1 (active)" in out.stdout, out.stderr
    policy_yaml.write_text(policy_yaml.read_text().replace("min: 0.5", "min: 0.3"))
    assert run_cli("policy", "add", str(policy_yaml), cwd=tmp_path, env=env).returncode == 0
    listing = run_cli("policy", "list", cwd=tmp_path, env=env).stdout
    assert "* cheap v1" in listing and "  cheap v2" in listing
    diff = run_cli("policy", "diff", "cheap", "1", "2", cwd=tmp_path, env=env).stdout
    assert "-    min: 0.5" in diff and "+    min: 0.3" in diff
    assert "activated cheap v2" in run_cli("policy", "activate", "cheap", "2", cwd=tmp_path, env=env).stdout
    assert "min: 0.3" in run_cli("policy", "show", "cheap", cwd=tmp_path, env=env).stdout

    policy_yaml.write_text(policy_yaml.read_text().replace("default_tier: small", "default_tier: medium"))
    bad = run_cli("policy", "add", str(policy_yaml), cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "error: default_tier: unknown tier 'medium'" in bad.stdout
    missing = run_cli("policy", "activate", "cheap", "7", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "has no version 7" in missing.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"ROUTER_AUTH": "maybe"}, "ROUTER_AUTH must be off or keys"),
    ({"ROUTER_MAX_BODY_BYTES": "lots"}, "ROUTER_MAX_BODY_BYTES must be a number"),
    ({"ROUTER_CLASSIFIER_RUNS": "0"}, "ROUTER_CLASSIFIER_RUNS must be positive"),
    ({"ROUTER_CONFIG": "/nonexistent/router.yaml"}, "config file not found"),
])
def test_serve_refuses_bad_configuration_with_a_message(tmp_path: Path, clean_env: dict[str, str],
                                                        env: dict[str, str], message: str) -> None:
    out = run_cli("serve", "--port", str(free_port()), cwd=tmp_path, env={**clean_env, **env})
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
