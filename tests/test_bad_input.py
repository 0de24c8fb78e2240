"""Bad requests get OpenAI-style JSON errors with the right status, nothing crashes,
and every refused request is logged as a decision with its error."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Api

USER = [{"role": "user", "content": "Hello!"}]


def post(api: Api, body: Any = None, *, content: bytes | None = None, path: str = "/chat/completions",
         headers: dict[str, str] | None = None) -> httpx.Response:
    kwargs: dict[str, Any] = {"content": content} if content is not None else {"json": body}
    return httpx.post(f"{api.base_url}{path}", headers=headers, timeout=10, **kwargs)


CASES = [
    ("malformed JSON", dict(content=b'{"messages": [}'), 400, "not valid JSON", None),
    ("empty body", dict(content=b""), 400, "request body is empty", None),
    ("not an object", dict(body=[1, 2]), 400, "must be a JSON object", None),
    ("missing messages", dict(body={"model": "router"}), 400, "messages is required", "messages"),
    ("empty messages", dict(body={"messages": []}), 400, "non-empty array", "messages"),
    ("wrong role", dict(body={"messages": [{"role": "wizard", "content": "hi"}]}), 400,
     "messages[0].role must be one of", "messages[0].role"),
    ("message not an object", dict(body={"messages": ["hi"]}), 400, "must be an object", "messages[0]"),
    ("empty content", dict(body={"messages": [{"role": "user", "content": "  "}]}), 400,
     "messages[0].content is empty", "messages[0].content"),
    ("no user message", dict(body={"messages": [{"role": "system", "content": "be brief"}]}), 400,
     "at least one user message", "messages"),
    ("image part", dict(body={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}), 400,
     "content part type 'image_url' is not supported", "messages[0].content"),
    ("content of the wrong type", dict(body={"messages": [{"role": "user", "content": 42}]}), 400,
     "must be a string or an array of text parts", "messages[0].content"),
    ("stream not a bool", dict(body={"messages": USER, "stream": "yes"}), 400, "stream must be true or false",
     "stream"),
    ("unknown policy", dict(body={"messages": USER, "router": {"policy": "nope"}}), 400,
     "unknown policy 'nope'", "router.policy"),
    ("router not an object", dict(body={"messages": USER, "router": "economy"}), 400, "router must be an object",
     "router"),
    ("unknown tier", dict(body={"model": "gpt-17", "messages": USER}), 404, "model 'gpt-17' is neither", "model"),
    ("temperature not a number", dict(body={"messages": USER, "temperature": "hot"}), 400,
     "temperature: 'hot' is not of type 'number'", "temperature"),
    ("temperature out of range", dict(body={"messages": USER, "temperature": 2.5}), 400,
     "temperature: 2.5 is greater than the maximum of 2", "temperature"),
    ("negative max_tokens", dict(body={"messages": USER, "max_tokens": -5}), 400,
     "max_tokens: -5 is less than the minimum of 1", "max_tokens"),
    ("max_completion_tokens a bool", dict(body={"messages": USER, "max_completion_tokens": True}), 400,
     "max_completion_tokens: True is not of type 'integer'", "max_completion_tokens"),
    ("top_p above 1", dict(body={"messages": USER, "top_p": 1.5}), 400, "top_p: 1.5 is greater", "top_p"),
    ("n zero", dict(body={"messages": USER, "n": 0}), 400, "n: 0 is less than the minimum of 1", "n"),
    ("too many stops", dict(body={"messages": USER, "stop": ["a", "b", "c", "d", "e"]}), 400, "stop: ", "stop"),
    ("penalty out of range", dict(body={"messages": USER, "presence_penalty": -3}), 400,
     "presence_penalty: -3 is less than the minimum of -2", "presence_penalty"),
    ("seed a float", dict(body={"messages": USER, "seed": 1.5}), 400, "seed: 1.5 is not of type 'integer'", "seed"),
    ("logprobs a string", dict(body={"messages": USER, "logprobs": "yes"}), 400, "logprobs: 'yes' is not of type",
     "logprobs"),
    ("unknown response_format", dict(body={"messages": USER, "response_format": {"type": "yaml"}}), 400,
     "response_format.type: 'yaml' is not one of", "response_format"),
    ("tool without a function", dict(body={"messages": USER, "tools": [{"type": "function"}]}), 400,
     "tools[0]: 'function' is a required property", "tools"),
    ("bad tool_choice", dict(body={"messages": USER, "tool_choice": "always"}), 400, "tool_choice: ", "tool_choice"),
    ("user not a string", dict(body={"messages": USER, "user": 7}), 400, "user: 7 is not of type 'string'", "user"),
    ("stream_options without stream", dict(body={"messages": USER, "stream_options": {"include_usage": True}}),
     400, "stream_options is only allowed when stream is true", "stream_options"),
    ("stream_options not an object", dict(body={"messages": USER, "stream": True, "stream_options": 3}), 400,
     "stream_options: 3 is not of type 'object'", "stream_options"),
]


@pytest.mark.parametrize(("name", "request_kwargs", "status", "message", "param"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_request_gets_openai_error_and_is_logged(sqlite_api: Api, name: str, request_kwargs: dict[str, Any],
                                                     status: int, message: str, param: str | None) -> None:
    r = post(sqlite_api, request_kwargs.get("body"), content=request_kwargs.get("content"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    rows = sqlite_api.decisions()
    assert len(rows) == 1
    assert rows[0]["id"] == r.headers["x-router-decision-id"]
    assert rows[0]["status"] == "error" and rows[0]["http_status"] == status
    assert message in rows[0]["error"] and rows[0]["source"] == "api"


def test_huge_body_is_refused_before_reading(api_factory, sqlite_url: str) -> None:
    api = api_factory(sqlite_url)
    limit = api.runtime.settings.max_body_bytes
    r = post(api, {"messages": [{"role": "user", "content": "x" * (limit + 10)}]})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large" and str(limit) in r.json()["error"]["message"]
    assert api.decisions()[0]["http_status"] == 413

    # Without a Content-Length (chunked upload) the limit still holds.
    def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    r = httpx.post(f"{api.base_url}/chat/completions", content=chunks(), timeout=10)
    assert r.status_code == 413


def test_text_parts_are_accepted_and_joined(sqlite_api: Api) -> None:
    r = post(sqlite_api, {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Write a Python function"}, {"type": "text", "text": "that reverses a list"}]}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-task"] == "Code Generation"
    assert sqlite_api.decisions()[0]["prompt"] == "Write a Python function\nthat reverses a list"


def test_openai_client_sees_a_typed_error(sqlite_api: Api) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sqlite_api.openai().chat.completions.create(model="gpt-17", messages=USER)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        sqlite_api.openai().chat.completions.create(model="router", messages=USER,
                                                    extra_body={"router": {"policy": "nope"}})
    assert "active policies are ['economy', 'quality-tolerance', 'task-complexity']" in info.value.body["message"]


def test_unknown_path_and_method_are_json_errors(sqlite_api: Api) -> None:
    r = httpx.get(f"{sqlite_api.base_url}/embeddings")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{sqlite_api.base_url}/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_route_endpoint_validates_too(sqlite_api: Api) -> None:
    r = post(sqlite_api, {"messages": [{"role": "user"}]}, path="/route")
    assert r.status_code == 400 and "messages[0].content" in r.json()["error"]["message"]


def test_an_unexpected_error_in_a_chat_is_a_json_500_and_the_server_goes_on(sqlite_api: Api,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sqlite_api.runtime.engine
    real_chat = engine.chat
    calls = 0

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug the router did not foresee")
        return await real_chat(*args, **kwargs)

    monkeypatch.setattr(engine, "chat", failing_once)
    r = post(sqlite_api, {"model": "router", "messages": USER})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "a bug" not in r.text  # the detail goes to the server log, not to the client
    assert post(sqlite_api, {"model": "router", "messages": USER}).status_code == 200
