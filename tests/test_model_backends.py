"""The ONNX Runtime and Triton backends on a tiny artifact made by the test: loading on
CPU, the contract's shape, batching, safe truncation, start-up fallback to keyword, and
the Triton client over HTTP and gRPC against KServe v2 peers."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from router.classifier import COMPLEXITY_WEIGHTS, TASK_LABELS
from router.classifier.artifact import ArtifactError
from router.classifier.onnx import OnnxClassifier
from router.classifier.triton import TritonClassifier
from router.config import Settings
from router.runtime import make_classifier
from tests.conftest import Api, Simulator, write_config
from tests.kserve_peer import Model, grpc_peer, http_peer
from tests.tiny_artifact import build

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["Write a Python function please", "summarize the list", "prove the story", "hello", ""]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("artifact") / "prompt-classifier")


def test_onnx_backend_loads_on_cpu_and_keeps_the_contract(artifact: Path) -> None:
    c = OnnxClassifier(artifact)
    assert c.info() == {"backend": "onnx", "provider": "CPUExecutionProvider", "model": str(artifact / "model.onnx"),
                        "japanese_glossary": False, "difficulty": "complexity score", "int8_weights": "as shipped"}
    predictions = c.classify(TEXTS)
    assert [p.task for p in predictions[:2]] == ["Code Generation", "Summarization"]
    for p in predictions:
        assert set(p.probabilities) == set(TASK_LABELS) and sum(p.probabilities.values()) == pytest.approx(1.0)
        assert set(p.dimensions) == set(COMPLEXITY_WEIGHTS) and 0 <= p.complexity <= 1
        assert p.backend == "onnx"
    assert predictions[2].complexity > predictions[0].complexity  # creativity and reasoning cues
    assert c.classify([TEXTS[0]])[0].probabilities == pytest.approx(predictions[0].probabilities, abs=1e-6)
    assert c.classify([]) == []


def test_long_prompts_are_truncated_safely(artifact: Path) -> None:
    c = OnnxClassifier(artifact)
    long = "python " * 20 + "summarize " * 50_000
    assert c.classify([long])[0].task == "Code Generation"  # only the first 32 tokens count
    encoded = c.pre.tokenizer.encode(long)
    assert len(encoded.ids) == 32


@pytest.mark.parametrize("damage", ["missing", "corrupt", "labels"])
def test_a_broken_artifact_falls_back_to_keyword_with_a_clear_log(artifact: Path, tmp_path: Path, damage: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    broken = build(tmp_path / "broken")
    if damage == "missing":
        (broken / "model.onnx").unlink()
    elif damage == "corrupt":
        (broken / "model.onnx").write_bytes(b"not an onnx model")
    else:
        (broken / "labels.json").write_text('{"tasks": ["Only"], "dimensions": []}')
    settings = Settings.from_env({"ROUTER_CLASSIFIER": "onnx", "ROUTER_CLASSIFIER_MODEL": str(broken)})
    with caplog.at_level(logging.ERROR):
        classifier, error = make_classifier(settings)
    assert classifier.info()["backend"] == "keyword"
    assert error and error.startswith("onnx failed to start")
    assert "classifier backend onnx failed to start, using the keyword classifier" in caplog.text
    with pytest.raises(ArtifactError):
        OnnxClassifier(broken)


def test_auto_uses_the_artifact_when_present(artifact: Path, tmp_path: Path) -> None:
    with_model, error = make_classifier(Settings.from_env({"ROUTER_CLASSIFIER_MODEL": str(artifact)}))
    assert with_model.info()["backend"] == "onnx" and error is None
    without, error = make_classifier(Settings.from_env({"ROUTER_CLASSIFIER_MODEL": str(tmp_path / "none")}))
    assert without.info()["backend"] == "keyword" and error is None


def test_engine_routes_with_the_model_and_health_reports_the_provider(artifact: Path, tmp_path: Path,
                                                                      sqlite_url: str, simulator: Simulator) -> None:
    from router.runtime import build_runtime

    settings = Settings.from_env({"DATABASE_URL": sqlite_url, "ROUTER_CONFIG": str(write_config(tmp_path)),
                                  "ROUTER_SIMULATOR": "off", "ROUTER_CLASSIFIER": "onnx",
                                  "ROUTER_CLASSIFIER_MODEL": str(artifact)})
    api = Api(build_runtime(settings, environ={}, simulator_url=simulator.base_url))
    try:
        r = httpx.post(f"{api.base_url}/chat/completions",
                       json={"messages": [{"role": "user", "content": "summarize the list"}]})
        assert r.status_code == 200 and r.headers["x-router-task"] == "Summarization"
        assert api.decisions()[0]["classifier_backend"] == "onnx"
        classifier = httpx.get(f"{api.url}/health?tiers=0").json()["classifier"]
        assert classifier["backend"] == "onnx" and classifier["provider"] == "CPUExecutionProvider"
    finally:
        api.server.stop()
        api.runtime.close()


def test_triton_client_over_http_and_grpc_matches_onnx(artifact: Path) -> None:
    expected = OnnxClassifier(artifact).classify(TEXTS)
    model = Model(artifact / "model.onnx", "prompt_classifier")
    http = http_peer(model)
    grpc_server, grpc_port = grpc_peer(model)
    try:
        for protocol, url in (("http", http.url), ("grpc", f"127.0.0.1:{grpc_port}")):
            before = model.requests
            c = TritonClassifier(url, artifact, protocol=protocol)
            got = c.classify(TEXTS)
            assert model.requests == before + 1  # one batched request for all texts
            assert [p.task for p in got] == [p.task for p in expected]
            for a, b in zip(got, expected, strict=True):
                assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
                assert a.complexity == pytest.approx(b.complexity, abs=1e-6)
                assert a.backend == "triton"
            assert c.info()["provider"] == f"Triton {protocol}://{url.removeprefix('http://')}"
        with pytest.raises(ArtifactError, match="no ready model 'other'"):
            TritonClassifier(http.url, artifact, model_name="other")
    finally:
        http.stop()
        grpc_server.stop(0)
    with pytest.raises(ArtifactError, match="is not reachable"):
        TritonClassifier(http.url, artifact, timeout_s=0.5)


def test_triton_model_config_parses_and_matches_the_artifact_contract() -> None:
    text = (ROOT / "deploy" / "triton" / "prompt_classifier" / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert config.name == "prompt_classifier" and config.backend == "onnxruntime"
    assert config.HasField("dynamic_batching") and config.max_batch_size >= 32
    inputs = {i.name: i for i in config.input}
    outputs = {o.name: o for o in config.output}
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert set(outputs) == {"task_probs", "dimensions", "difficulty"}
    assert list(outputs["difficulty"].dims) == [1]
    assert all(i.data_type == model_config_pb2.TYPE_INT64 and list(i.dims) == [-1] for i in inputs.values())
    assert list(outputs["task_probs"].dims) == [len(TASK_LABELS)]
    assert list(outputs["dimensions"].dims) == [len(COMPLEXITY_WEIGHTS)]
    assert any(g.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU for g in config.instance_group)


def test_an_untrained_build_cannot_route(artifact: Path, tmp_path: Path) -> None:
    import json
    import shutil

    build_dir = tmp_path / "latency-only"
    shutil.copytree(artifact, build_dir)
    labels = json.loads((build_dir / "labels.json").read_text())
    (build_dir / "labels.json").write_text(json.dumps({**labels, "untrained": True}))
    with pytest.raises(ArtifactError, match="untrained heads"):
        OnnxClassifier(build_dir)
    assert OnnxClassifier(build_dir, allow_untrained=True).classify(["hello"])[0].task == "Chatbot"
    classifier, error = make_classifier(Settings.from_env({"ROUTER_CLASSIFIER_MODEL": str(build_dir)}))
    assert classifier.info()["backend"] == "keyword" and "untrained heads" in error


def test_a_dynamically_quantized_model_gives_each_prompt_the_same_prediction_alone_or_batched(
        tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = build(tmp_path / "int8")
    quantize_dynamic(str(folder / "model.onnx"), str(folder / "model-int8.onnx"), weight_type=QuantType.QInt8)
    int8 = OnnxClassifier(folder, model_file="model-int8.onnx")
    assert int8.one_per_run and not OnnxClassifier(folder).one_per_run
    texts = ["Write a Python function please", "prove the story " * 10, "hello"]
    alone = [int8.classify([t])[0] for t in texts]
    assert int8.classify(texts) == alone
