"""The API's OpenAPI description, served at /openapi.json. Written out by hand: it is the
contract clients and the fuzz tests rely on, so it says exactly what the server accepts."""

from __future__ import annotations

from typing import Any

from router import __version__
from router.chat_request import ROLES
from router.sampling import PARAMETERS

TEXT_PART = {"type": "object", "required": ["type", "text"],
             "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
MESSAGE = {
    "type": "object", "required": ["role", "content"],
    "properties": {
        "role": {"enum": list(ROLES)},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}]},
        "name": {"type": "string"},
    },
}
CHAT_REQUEST = {
    "type": "object", "required": ["messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1,
                  "description": "'router' to route, or a tier name / tier model id to pin a tier."},
        "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"},
                     "description": "At least one user message with non-empty content."},
        "stream": {"type": "boolean"},
        **PARAMETERS,
        "router": {"type": "object", "properties": {
            "policy": {"type": "string", "minLength": 1},
            "conversation_id": {"type": "string", "minLength": 1, "maxLength": 64}}},
    },
}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "OpenAI-style error",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


def openapi() -> dict[str, Any]:
    chat_body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "LLM router", "version": __version__,
                 "description": "OpenAI-compatible chat completions, routed to the cheapest tier that fits."},
        "paths": {
            "/v1/chat/completions": {"post": {
                "summary": "Routed chat completion (stream or not)", "requestBody": chat_body,
                "responses": {"200": {"description": "A chat.completion, or server-sent chat.completion.chunk events",
                                      "content": {"application/json": {"schema": {"type": "object"}},
                                                  "text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors(400, 401, 404, 413, 502, 503, 504)}}},
            "/v1/route": {"post": {
                "summary": "The routing decision only", "requestBody": chat_body,
                "responses": {"200": {"description": "Decision",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **_errors(400, 401, 404, 413)}}},
            "/v1/models": {"get": {"summary": "Tiers and the virtual router model",
                                   "responses": {"200": {"description": "Model list"}, **_errors(401)}}},
            "/health": {"get": {"summary": "Health report", "responses": {"200": {"description": "Healthy"},
                                                                          "503": {"description": "Degraded"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Metrics"}}}},
        },
        "components": {"schemas": {"ChatCompletionRequest": CHAT_REQUEST, "Message": MESSAGE, "Error": ERROR}},
    }
