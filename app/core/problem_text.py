"""The text of problem details in Chinese and English.

A problem's `detail` (and each `errors[]` item's `detail`) may be a `Message`: a key of
`problem_messages.toml` with its parameters. A `Message` *is* its English text (a `str`), so
code that logs it, compares it or builds on it keeps working; the error handlers render it in
the language the client asked for (`Accept-Language`: `zh`, `zh-CN`, `zh-Hans` → Chinese,
anything else English) or, for the web explorer's pages, in the page's language. `type` and
`title` never change with the language: clients branch on them.

The catalogue is checked when it is first read (at import, so at start-up): every key has both
languages, and both use the same `{placeholders}`. A `Message` whose parameters differ from its
key's placeholders is refused when it is built.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

Lang = Literal["zh", "en"]
LANGUAGES: tuple[Lang, ...] = get_args(Lang)
API_DEFAULT_LANG: Lang = "en"
CATALOGUE_PATH = Path(__file__).with_name("problem_messages.toml")
# The language tags that mean Simplified Chinese, the catalogue's Chinese.
_CHINESE_TAGS = frozenset({"zh", "zh-cn", "zh-hans", "zh-hans-cn", "zh-sg", "zh-hans-sg"})


class CatalogueError(RuntimeError):
    """The problem-message catalogue is incomplete or inconsistent (a start-up error)."""


@lru_cache(maxsize=4096)
def placeholders(text: str) -> frozenset[str]:
    """The `{names}` in `text` (kept: every `Message` asks for its key's again)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def check_catalogue(entries: Mapping[str, Any], *, origin: str = "catalogue") -> None:
    """Refuses a key without both languages, or whose languages disagree on placeholders."""
    for key, texts in entries.items():
        if not isinstance(texts, Mapping):
            raise CatalogueError(f"{origin}: {key!r} is not a table of languages")
        for lang in LANGUAGES:
            if not isinstance(texts.get(lang), str) or not texts[lang]:
                raise CatalogueError(f"{origin}: message {key!r} has no {lang!r} text")
        extra = set(texts) - set(LANGUAGES)
        if extra:
            raise CatalogueError(f"{origin}: message {key!r} has unknown languages {extra}")
        names = {lang: placeholders(texts[lang]) for lang in LANGUAGES}
        if names["zh"] != names["en"]:
            raise CatalogueError(
                f"{origin}: message {key!r} has placeholders {sorted(names['en'])} in English "
                f"but {sorted(names['zh'])} in Chinese"
            )


@cache
def catalogue() -> dict[str, dict[Lang, str]]:
    with CATALOGUE_PATH.open("rb") as handle:
        entries = tomllib.load(handle)
    check_catalogue(entries, origin=CATALOGUE_PATH.name)
    return {key: {lang: texts[lang] for lang in LANGUAGES} for key, texts in entries.items()}


class Localized(str):
    """A text that is its English and knows its Chinese (e.g. a pydantic message, whose English
    pydantic words itself, and its Chinese from the catalogue)."""

    zh: str

    def __new__(cls, en: str, zh: str) -> Localized:
        self = super().__new__(cls, en)
        self.zh = zh
        return self

    def render(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else str.__str__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Localized, (str.__str__(self), self.zh))


class Message(Localized):
    """A problem text: its English rendering, with the key and parameters to render it again
    in Chinese. Parameters may themselves be `Message`s (rendered in the same language)."""

    key: str
    params: dict[str, Any]

    def __new__(cls, key: str, /, **params: Any) -> Message:
        texts = catalogue().get(key)
        if texts is None:
            raise KeyError(f"no problem message {key!r} in {CATALOGUE_PATH.name}")
        expected = placeholders(texts["en"])
        if set(params) != expected:
            raise ValueError(
                f"problem message {key!r} takes {sorted(expected)}, was given {sorted(params)}"
            )
        self = str.__new__(cls, _format(texts["en"], params, "en"))
        self.key = key
        self.params = params
        self.zh = _format(texts["zh"], params, "zh")
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (and copies) as a Message
        return (_rebuild, (self.key, self.params))


def _rebuild(key: str, params: dict[str, Any]) -> Message:
    return Message(key, **params)


def _format(text: str, params: Mapping[str, Any], lang: Lang) -> str:
    if not params:
        return text
    return text.format(**{name: localize(value, lang) for name, value in params.items()})


def joined(parts: list[Any], *, en: str = ", ", zh: str = "；") -> Localized:
    """Texts (some `Localized`) joined, each language with its own separator."""
    return Localized(
        en.join(localize(part, "en") for part in parts),
        zh.join(localize(part, "zh") for part in parts),
    )


def localize(value: Any, lang: Lang) -> Any:
    """`value` with every `Message` inside it (in dicts, lists, tuples) rendered in `lang`."""
    if isinstance(value, Localized):
        return value.render(lang)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {name: localize(item, lang) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [localize(item, lang) for item in value]
    return value


def language_from_header(header: str | None) -> Lang:
    """The language of a problem for this `Accept-Language`: the best-ranked of Chinese
    (`zh`, `zh-CN`, `zh-Hans`…) and English (any other tag: the service has no third language),
    by q-value then order; English when the header is absent or unreadable."""
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if tag in _CHINESE_TAGS:
            lang: Lang = "zh"
        elif tag == "en" or tag.startswith("en-"):
            lang = "en"
        else:
            continue  # neither language: it does not pick one of ours
        ranked = (-quality, position, lang)
        if best is None or ranked < best:
            best = ranked
    return best[2] if best is not None else API_DEFAULT_LANG
