"""A chat completion request, validated: what the engine routes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from router.classifier.text import join_turn_and_context
from router.errors import APIError, invalid
from router.sampling import parameter_error

ROLES = ("system", "developer", "user", "assistant", "tool")
ROUTER_MODEL = "router"
# The router's own fields; every other field is a parameter for the tier, passed as it is
# once the known ones have been checked (router/sampling.py).
OWN_FIELDS = frozenset({"messages", "model", "stream", "router"})


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    model: str = ROUTER_MODEL  # "router", or a tier name / tier model id to pin
    stream: bool = False
    policy: str | None = None
    conversation_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "api"
    request_id: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool((self.params.get("stream_options") or {}).get("include_usage"))

    @property
    def latest_user_text(self) -> str:
        for m in reversed(self.messages):
            if m["role"] == "user":
                return str(m["content"])
        return ""

    @property
    def turn(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "user")

    def classifier_text(self) -> str:
        """The latest user turn, with earlier turns as context for follow-ups."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "user")
        context = "\n".join(f"{m['role']}: {m['content']}" for m in self.messages[:last]
                            if m["role"] in ("user", "assistant") and m["content"])
        return join_turn_and_context(self.messages[last]["content"], context)

    def derived_conversation_id(self) -> str:
        """Stable across turns: the system prompt and the first user message."""
        if self.conversation_id:
            return self.conversation_id
        system = next((m["content"] for m in self.messages if m["role"] in ("system", "developer")), "")
        first = next(m["content"] for m in self.messages if m["role"] == "user")
        return hashlib.sha1(f"{system}\x00{first}".encode()).hexdigest()[:24]


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or "type" not in part:
                raise invalid(f"{where}.content[{j}] must be an object with a type", f"{where}.content")
            if part["type"] != "text":
                raise invalid(f"{where}.content[{j}]: content part type {part['type']!r} is not supported; "
                              "only text parts are routed", f"{where}.content")
            if not isinstance(part.get("text"), str):
                raise invalid(f"{where}.content[{j}].text must be a string", f"{where}.content")
            texts.append(part["text"])
        return "\n".join(texts)
    raise invalid(f"{where}.content must be a string or an array of text parts", f"{where}.content")


def parse_chat_request(body: Any, *, source: str = "api") -> ChatRequest:
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages is required", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty array", "messages")
    normalized = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise invalid(f"{where} must be an object with role and content", where)
        role = m.get("role")
        if role not in ROLES:
            raise invalid(f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}", f"{where}.role")
        content = m.get("content")
        text = "" if content is None and role == "assistant" and m.get("tool_calls") else _content_text(content, where)
        if role == "user" and not text.strip():
            raise invalid(f"{where}.content is empty", f"{where}.content")
        normalized.append({**m, "content": text})
    if not any(m["role"] == "user" for m in normalized):
        raise invalid("messages must contain at least one user message", "messages")

    model = body.get("model", ROUTER_MODEL)
    if not isinstance(model, str) or not model:
        raise invalid("model must be a non-empty string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream must be true or false", "stream")
    router_opts = body.get("router") or {}
    if not isinstance(router_opts, dict):
        raise invalid('router must be an object such as {"policy": "name"}', "router")
    policy = router_opts.get("policy")
    if policy is not None and (not isinstance(policy, str) or not policy):
        raise invalid("router.policy must be a policy name", "router.policy")
    conversation = router_opts.get("conversation_id")
    if conversation is not None and (not isinstance(conversation, str) or not 0 < len(conversation) <= 64):
        raise invalid("router.conversation_id must be a string of 1 to 64 characters", "router.conversation_id")
    params = {k: v for k, v in body.items() if k not in OWN_FIELDS}
    for name, value in params.items():
        problem = parameter_error(name, value)
        if problem is not None:
            raise invalid(problem, name)
    if params.get("stream_options") is not None and not stream:
        raise invalid("stream_options is only allowed when stream is true", "stream_options")
    return ChatRequest(normalized, model, stream, policy, conversation, params, source)


__all__ = ["ROUTER_MODEL", "APIError", "ChatRequest", "parse_chat_request"]
