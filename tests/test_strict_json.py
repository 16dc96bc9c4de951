"""The strict JSON check (app/core/strict_json.py): its quick path for plain bodies says a body
is strict exactly when the full check does, and takes a resolve body of 1000 lines."""

from __future__ import annotations

import json
import random

import pytest

from app.core.strict_json import MAX_DEPTH, check_strict_json, full_check, plainly_strict

TRICKY = [
    b'{"a":1,"a":2}',
    b'{"items":[{"a":1,"b":{"c":2,"c":3}}]}',
    b'{"a":": x","b":"::","c":"{[]}"}',
    b'{"a":": x","b":"::","c":"{[]}","d":"a\\":"}',
    b'{"a":":","a":":"}',
    b'[{"k":"v"},{"k":"v"}]',
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
    b"[NaN]",
    b'{"a":Infinity}',
    b'{"a":"\\u0000"}',
    b'{"a":"\\ud800"}',
    b'{"\\u0061":1,"a":2}',
    b'{"a":"x\\"y"}',
    '{"名":"值: {", "値":["[", "]"]}'.encode(),
    b"{}",
    b"[]",
    b"1",
    b'"a:b"',
    b"",
    b"{",
    b'{"a":1}{"a":1}',
    b"\xef\xbb\xbf{}",
    b'["\xed\xa0\x80"]',
    b"[123456789012345678901234567890]",
    b"[1e400]",
    b' \n{ "a" : 1 , "b" :\t[ ] }\n',
]


def _random_value(rng: random.Random, depth: int, deepest: int) -> object:
    """Arrays and objects down to `deepest`, one branch going all the way."""
    if depth >= deepest:
        return rng.choice([1, -2.5, None, True, "", "x:y", "{[", "]}", ":", "名", "a,b", [], {}])
    scalars = [rng.choice(["s", 2, ":", "[{"]) for _ in range(rng.randrange(3))]
    if rng.random() < 0.5:
        return [*scalars, _random_value(rng, depth + 1, deepest)]
    keys = [rng.choice("abc:{[") + str(n) for n in range(len(scalars) + 1)]
    return {
        **dict(zip(keys, scalars, strict=False)),
        keys[-1]: _random_value(rng, depth + 1, deepest),
    }


def _objects(value: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@pytest.mark.parametrize("body", TRICKY)
def test_the_quick_path_says_what_the_full_check_says(body: bytes) -> None:
    assert check_strict_json(body) == full_check(body)
    if plainly_strict(body):
        assert full_check(body) is None


def test_random_bodies_with_and_without_repeated_keys() -> None:
    rng = random.Random(20261205)
    quick = 0
    for _ in range(400):
        deepest = rng.choice([1, 3, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
        value = _random_value(rng, 1, deepest)
        objects = _objects(value)
        repeat = bool(objects) and rng.random() < 0.5
        if repeat:
            rng.choice(objects)["REPEATED"] = 1
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        # One object's key written twice (json.dumps cannot: a dict holds a key once).
        text = text.replace('"REPEATED": 1', '"k:": 1, "k:": 2', 1)
        body = text.encode()
        assert ("appears twice" in (full_check(body) or "")) == repeat
        assert check_strict_json(body) == full_check(body), body
        quick += plainly_strict(body)
    assert quick > 100  # the quick path answers most of them


def test_a_resolve_body_takes_the_quick_path() -> None:
    rng = random.Random(7)
    items = [
        {
            "activity_id": f"synthetic-activity-{rng.randrange(48):02d}",
            "region": rng.choice(["CN", "CN-GD", "GLO"]),
            "year": rng.randrange(2012, 2027),
            **({"unit": "MWh"} if rng.random() < 0.5 else {}),
        }
        for _ in range(1000)
    ]
    body = json.dumps({"items": items}).encode()
    assert plainly_strict(body)
    assert check_strict_json(body) is None
