"""KServe v2 (Triton's protocol) peers for the Triton backend's tests, over HTTP/JSON and
gRPC, running an ONNX artifact with onnxruntime. No Triton server binary can be installed
from a package registry here, so the client is tested against the protocol itself."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from router.background import BackgroundServer

DTYPES = {"INT64": np.int64, "FP32": np.float32}


class Model:
    def __init__(self, path: Path, name: str) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = name
        self.requests = 0

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        self.requests += 1
        return self.session.run(outputs, feeds)


def http_peer(model: Model) -> BackgroundServer:
    async def ready(request: Request) -> JSONResponse:
        ok = request.path_params.get("name", model.name) == model.name
        return JSONResponse({}, 200 if ok else 404)

    async def infer(request: Request) -> JSONResponse:
        if request.path_params["name"] != model.name:
            return JSONResponse({"error": "unknown model"}, 404)
        body = await request.json()
        feeds = {i["name"]: np.array(i["data"], dtype=DTYPES[i["datatype"]]).reshape(i["shape"])
                 for i in body["inputs"]}
        names = [o["name"] for o in body["outputs"]]
        results = model.run(feeds, names)
        return JSONResponse({"model_name": model.name, "outputs": [
            {"name": n, "datatype": "FP32", "shape": list(r.shape), "data": r.flatten().tolist()}
            for n, r in zip(names, results, strict=True)]})

    app = Starlette(routes=[Route("/v2/health/ready", ready), Route("/v2/models/{name}/ready", ready),
                            Route("/v2/models/{name}/infer", infer, methods=["POST"])])
    return BackgroundServer(app, name="kserve-http")


class _Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, model: Model) -> None:
        self.model = model

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=request.name == self.model.name)

    def ModelInfer(self, request, context):
        feeds = {i.name: np.frombuffer(raw, dtype=DTYPES[i.datatype]).reshape(list(i.shape))
                 for i, raw in zip(request.inputs, request.raw_input_contents, strict=True)}
        names = [o.name for o in request.outputs]
        results = self.model.run(feeds, names)
        response = pb.ModelInferResponse(model_name=self.model.name)
        for name, result in zip(names, results, strict=True):
            response.outputs.add(name=name, datatype="FP32", shape=list(result.shape))
            response.raw_output_contents.append(result.astype(np.float32).tobytes())
        return response


def grpc_peer(model: Model) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(model), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port
