"""The chat-completions parameters the router knows, checked against OpenAI's schema (types
and ranges) before anything is routed, so a bad value is a 400 that names the field instead
of a tier's error or a silent pass. The same schemas describe the request in /openapi.json.
Parameters the router does not know pass through to the tier untouched."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

STOP_MAX = 4
MAX_MESSAGE_CHARS = 300

FUNCTION = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"},
    "description": {"type": "string"}, "parameters": {"type": "object"}, "strict": {"type": ["boolean", "null"]}}}
PARAMETERS: dict[str, dict[str, Any]] = {
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "max_tokens": {"type": ["integer", "null"], "minimum": 1},
    "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
    "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
    "stop": {"oneOf": [{"type": "null"}, {"type": "string"},
                       {"type": "array", "items": {"type": "string"}, "maxItems": STOP_MAX}]},
    "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}}},
    "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "seed": {"type": ["integer", "null"]},
    "logprobs": {"type": ["boolean", "null"]},
    "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
    "logit_bias": {"type": ["object", "null"], "additionalProperties": {"type": "number", "minimum": -100,
                                                                         "maximum": 100}},
    "response_format": {"type": "object", "required": ["type"], "properties": {
        "type": {"enum": ["text", "json_object", "json_schema"]}, "json_schema": {"type": "object"}}},
    "tools": {"type": "array", "items": {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"const": "function"}, "function": FUNCTION}}},
    "tool_choice": {"oneOf": [{"enum": ["none", "auto", "required"]},
                              {"type": "object", "required": ["type", "function"], "properties": {
                                  "type": {"const": "function"},
                                  "function": {"type": "object", "required": ["name"],
                                               "properties": {"name": {"type": "string"}}}}}]},
    "user": {"type": "string"},
}
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in PARAMETERS.items()}


def parameter_error(name: str, value: Any) -> str | None:
    """Why `value` is not a valid `name`, or None when it is (or the router does not know `name`)."""
    validator = _VALIDATORS.get(name)
    if validator is None:
        return None
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return None
    where = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message  # e.g. "'hot' is not of type 'number', 'null'"; bools are not numbers here either
    return f"{where}: {message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + '…'}"
