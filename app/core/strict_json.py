"""Refuse JSON bodies that Python's json module would quietly accept but JSON does not allow.

`json.loads` takes NaN and Infinity, and lets a repeated key silently override the first one;
either could smuggle a value past validation. This ASGI middleware checks JSON request bodies
strictly before the app parses them, and replays the body unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response, scope_language
from app.core.problem_text import Message as ProblemMessage

# Deeper than any request body or upload row needs; refused before it can exhaust the stack.
MAX_DEPTH = 32


class StrictJSONError(ValueError):
    """Valid to Python's json module, not to JSON (or nested beyond MAX_DEPTH)."""


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"key '{key}' appears twice in one object")
        result[key] = value
    return result


def strict_loads(data: bytes | str) -> Any:
    """Parse JSON as JSON defines it: no NaN or Infinity, no repeated key in an object, at
    most MAX_DEPTH levels of arrays and objects. StrictJSONError says what was refused;
    another ValueError that the text is not JSON at all."""
    try:
        value = json.loads(
            data, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicate_keys
        )
    except RecursionError as exc:
        raise StrictJSONError(f"arrays or objects nested more than {MAX_DEPTH} deep") from exc
    if _depth(value) > MAX_DEPTH:
        raise StrictJSONError(f"arrays or objects nested more than {MAX_DEPTH} deep")
    return value


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


_UNSTORABLE = re.compile("[\\x00\\ud800-\\udfff]")


def _unstorable_text(value: Any) -> str | None:
    """A NUL or a lone surrogate in any string or key: no database column can hold either."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _UNSTORABLE.search(item)
            if found is not None:
                return f"a string holds U+{ord(found.group()):04X}, which no text can hold"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


# In a value orjson writes with 2-space indentation, a line indented this deep is inside the
# MAX_DEPTH-th array or object (only indentation follows a newline: strings have them escaped).
_TOO_DEEP = b"\n" + b" " * (2 * MAX_DEPTH)


def plainly_strict(body: bytes) -> bool:
    """True when `body` is certainly strict JSON, found without a Python pass over its values
    (a 1000-line resolve body: ~0.5 ms instead of ~2.5 ms); False when unsure, and the full
    check decides.

    For a body without a backslash (no escapes: no NUL or surrogate can come from one, and a
    string's text is as written) that orjson reads (strict UTF-8, no NaN or Infinity, no
    control character in a string): written again from the value read, it has as many colons
    as the body exactly when no key was repeated (orjson keeps one of repeated keys: the
    other's colon, and any in its strings, are gone; nothing else changes the count); and no
    line of it is indented 2 × MAX_DEPTH spaces when it is nested at most MAX_DEPTH deep (an
    empty array at depth MAX_DEPTH + 1 is not indented further: such a body goes to the full
    check, which is exact)."""
    if b"\\" in body:
        return False
    try:
        written = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return False
    return written.count(b":") == body.count(b":") and _TOO_DEEP not in written


def check_strict_json(body: bytes) -> str | None:
    """None if the body is strict JSON (or not JSON at all: the app reports that), else why."""
    if plainly_strict(body):
        return None
    return full_check(body)


def full_check(body: bytes) -> str | None:
    """`check_strict_json` by parsing the body with a hook on every object and walking every
    value (what it does when `plainly_strict` is unsure)."""
    try:
        value = strict_loads(body)
    except StrictJSONError as exc:
        return str(exc)
    except ValueError:
        return None
    return _unstorable_text(value)


class StrictJSON:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        reason = check_strict_json(body) if body else None
        if reason is not None:
            response = problem_response(
                status=422,
                code="invalid-json",
                title="Invalid JSON",
                detail=ProblemMessage("json.not_strict", reason=reason),
                instance=scope.get("path"),
                errors=[{"loc": ["body"], "code": "invalid_json", "detail": reason}],
                lang=scope_language(scope),
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
    return content_type.startswith(b"application/json") or b"+json" in content_type
