"""Language choice and labels for the web explorer (Chinese and English).

The language comes from `?lang=zh|en` when given (so that a URL fixes what a reader sees),
otherwise from `Accept-Language`, otherwise Chinese, the service's first audience. Labels live
in `messages/*.toml`, one file per area of the site, each key with both languages; a missing
translation is a start-up error, never an English word on a Chinese page.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from fastapi import Request

Lang = Literal["zh", "en"]
LANGUAGES: tuple[Lang, ...] = get_args(Lang)
DEFAULT_LANG: Lang = "zh"
MESSAGES_DIR = Path(__file__).parent / "messages"


class MissingTranslation(RuntimeError):
    pass


@cache
def catalog() -> dict[Lang, dict[str, str]]:
    """Every label in both languages, read once from `messages/*.toml`."""
    merged: dict[Lang, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    owners: dict[str, str] = {}
    for path in sorted(MESSAGES_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            entries: Mapping[str, Mapping[str, str]] = tomllib.load(handle)
        for key, texts in entries.items():
            if key in owners:
                raise MissingTranslation(f"label {key!r} is in {owners[key]} and {path.name}")
            owners[key] = path.name
            for lang in LANGUAGES:
                text = texts.get(lang)
                if not isinstance(text, str) or not text:
                    raise MissingTranslation(f"label {key!r} in {path.name} has no {lang!r} text")
                merged[lang][key] = text
    return merged


def negotiate(request: Request) -> Lang:
    """`?lang=` wins; then the first supported language in `Accept-Language` by its q-value."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    ranked: list[tuple[float, int, Lang]] = []
    header = request.headers.get("accept-language", "")
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANG


class Translator:
    """`t("key")` in templates; `t("key", n=3)` fills `{n}` placeholders."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self._labels = catalog()[lang]

    def __call__(self, key: str, **values: object) -> str:
        text = self._labels.get(key)
        if text is None:
            raise MissingTranslation(f"no label {key!r}")
        return text.format(**values) if values else text

    def pick(self, zh: str | None, en: str | None) -> str:
        """A name in the reader's language, falling back to the other one."""
        first, second = (zh, en) if self.lang == "zh" else (en, zh)
        return first or second or ""
