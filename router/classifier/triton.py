"""The Triton backend: the same ONNX model behind Triton Inference Server (onnxruntime
backend, dynamic batching; see deploy/triton/), tokenized here with the artifact's own
tokenizer, reached over HTTP or gRPC with tritonclient (the KServe v2 protocol)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router.classifier.artifact import DIFFICULTY, INPUTS, OUTPUTS, ArtifactError, Preprocessor
from router.classifier.prediction import Prediction


class TritonClassifier:
    name = "triton"

    def __init__(self, url: str, model_dir: Path | str, *, model_name: str = "prompt_classifier",
                 protocol: str = "http", timeout_s: float = 2.0) -> None:
        if protocol not in ("http", "grpc"):
            raise ValueError("protocol must be http or grpc")
        self.url = url.removeprefix("http://").removeprefix("https://").rstrip("/")
        self.model_name = model_name
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.pre = Preprocessor(Path(model_dir))
        self.outputs = [*OUTPUTS, DIFFICULTY] if self.pre.labels.difficulty else list(OUTPUTS)
        if protocol == "http":
            import tritonclient.http as client
        else:
            import tritonclient.grpc as client
        self._client_mod = client
        self._client = (client.InferenceServerClient(url=self.url, connection_timeout=timeout_s,
                                                     network_timeout=timeout_s) if protocol == "http"
                        else client.InferenceServerClient(url=self.url))
        try:
            ready = self._client.is_model_ready(model_name)
        except Exception as exc:  # tritonclient raises its own exception types per protocol
            raise ArtifactError(f"Triton at {self.url} ({protocol}) is not reachable: {exc}") from None
        if not ready:
            raise ArtifactError(f"Triton at {self.url} has no ready model {model_name!r}")

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        feeds = self.pre.encode(texts)
        client = self._client_mod
        http = self.protocol == "http"
        inputs = []
        for name in INPUTS:
            item = client.InferInput(name, list(feeds[name].shape), "INT64")
            # JSON tensors over HTTP keep the exchange readable; gRPC always sends raw bytes.
            item.set_data_from_numpy(feeds[name], **({"binary_data": False} if http else {}))
            inputs.append(item)
        outputs = [client.InferRequestedOutput(name, **({"binary_data": False} if http else {}))
                   for name in self.outputs]
        kwargs = {} if http else {"client_timeout": self.timeout_s}
        result = self._client.infer(self.model_name, inputs, outputs=outputs, **kwargs)
        difficulty = result.as_numpy(DIFFICULTY) if self.pre.labels.difficulty else None
        return self.pre.predictions(result.as_numpy(OUTPUTS[0]), result.as_numpy(OUTPUTS[1]), self.name, difficulty)

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "provider": f"Triton {self.protocol}://{self.url}", "model": self.model_name,
                "japanese_glossary": self.pre.glossary is not None,
                "difficulty": "learned head" if self.pre.labels.difficulty else "complexity score"}
