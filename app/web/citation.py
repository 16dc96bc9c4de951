"""Citations of one factor in one released version: GB/T 7714-2015, APA, BibTeX and CSL-JSON.

Pure functions over a `CitedFactor`: no database, no request. Every style names the
version-pinned permalink, the dataset version and the version's content hash, so that a
reader of the citing work can fetch exactly the number that was cited and check it.

- GB/T 7714-2015 (信息与文献 参考文献著录规则): the factor is a part of a dataset, cited as a
  contribution (析出文献, §8.1.3 / 4.2) with the document type code DS (数据集) and the carrier
  OL (联机网络), the version as the edition element, the publication date of the release, the
  date of citation in brackets, and the access path. Online resources without a place of
  publication omit it.
- APA 7th edition, data set reference (§10.9): Author. (Year). *Title* (Version) [Data set].
  Publisher. URL.
- BibTeX `@misc` (every BibTeX style knows it; biblatex reads `version` and `urldate` too).
- CSL-JSON (Citation Style Language 1.0.2 item, type `dataset`), as a one-item array, the form
  Zotero and pandoc import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args

CitationStyle = Literal["gb7714", "apa", "bibtex", "csl-json"]
CITATION_STYLES: tuple[CitationStyle, ...] = get_args(CitationStyle)
CSL_JSON_MEDIA_TYPE = "application/vnd.citationstyles.csl+json"
BIBTEX_MEDIA_TYPE = "application/x-bibtex"


@dataclass(frozen=True)
class CitedFactor:
    """What a citation of one factor in one release needs."""

    publisher: str
    dataset: str
    factor_code: str
    version: str
    content_sha256: str
    published_at: datetime
    permalink: str
    accessed: date
    publisher_name_zh: str | None
    publisher_name_en: str | None
    dataset_title_zh: str | None
    dataset_title_en: str | None
    factor_name_zh: str | None
    factor_name_en: str | None
    site_name_zh: str
    site_name_en: str

    @property
    def factor_id(self) -> str:
        return f"{self.publisher}/{self.dataset}/{self.factor_code}@{self.version}"


def _pick(lang: str, zh: str | None, en: str | None, fallback: str) -> str:
    first, second = (zh, en) if lang == "zh" else (en, zh)
    return first or second or fallback


def _author(cited: CitedFactor, lang: str) -> str:
    return _pick(lang, cited.publisher_name_zh, cited.publisher_name_en, cited.publisher)


def _title(cited: CitedFactor, lang: str) -> str:
    return _pick(lang, cited.factor_name_zh, cited.factor_name_en, cited.factor_code)


def _container(cited: CitedFactor, lang: str) -> str:
    return _pick(lang, cited.dataset_title_zh, cited.dataset_title_en, cited.dataset)


def _site(cited: CitedFactor, lang: str) -> str:
    return cited.site_name_zh if lang == "zh" else cited.site_name_en


def _end(text: str) -> str:
    """Close an element with a full stop unless it already ends in punctuation."""
    return text if text.endswith((".", "。", "?", "!", "？", "！")) else text + "."


def gb7714(cited: CitedFactor, lang: str = "zh") -> str:
    """GB/T 7714-2015, a contribution (析出文献) to a dataset, online."""
    author = _author(cited, lang)
    published = cited.published_at.date().isoformat()
    if lang == "zh":
        edition = f"{cited.version}版"
        hash_note = f"内容哈希 SHA-256: {cited.content_sha256}"
    else:
        edition = f"Version {cited.version}"
        hash_note = f"Content SHA-256: {cited.content_sha256}"
    return (
        f"{_end(author)} {_title(cited, lang)}[DS/OL]//{_end(author)} "
        f"{_end(_container(cited, lang))} {_end(edition)} {_site(cited, lang)}, "
        f"{published}[{cited.accessed.isoformat()}]. {cited.permalink}. {_end(hash_note)}"
    )


def apa(cited: CitedFactor, lang: str = "en") -> str:
    """APA 7th edition, a data set (plain text: the title is italic where a page renders it)."""
    year = cited.published_at.year
    if lang == "zh":
        bracket = "[数据集]"
        version = f"版本 {cited.version}; 内容哈希 SHA-256 {cited.content_sha256}"
        container = f"收录于 {_container(cited, lang)}"
    else:
        bracket = "[Data set]"
        version = f"Version {cited.version}; content SHA-256 {cited.content_sha256}"
        container = f"In {_container(cited, lang)}"
    return (
        f"{_end(_author(cited, lang))} ({year}). {_title(cited, lang)} ({version}) {bracket}. "
        f"{_end(container)} {_end(_site(cited, lang))} {cited.permalink}"
    )


_BIBTEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def bibtex_escape(text: str) -> str:
    """Text safe inside a BibTeX field: TeX's special characters escaped."""
    return "".join(_BIBTEX_SPECIALS.get(char, char) for char in text)


def bibtex_key(cited: CitedFactor) -> str:
    """A citation key of ASCII letters, digits, `-` and `_`, unique per factor and version."""
    raw = f"{cited.publisher}_{cited.dataset}_{cited.factor_code}_{cited.version}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", raw)


def bibtex(cited: CitedFactor, lang: str = "en") -> str:
    """A BibTeX `@misc` entry; the author is an organisation, kept whole by double braces."""
    fields = [
        ("author", "{" + bibtex_escape(_author(cited, lang)) + "}"),
        ("title", "{" + bibtex_escape(_title(cited, lang)) + "}"),
        ("year", str(cited.published_at.year)),
        ("date", cited.published_at.date().isoformat()),
        ("version", bibtex_escape(cited.version)),
        ("publisher", bibtex_escape(_site(cited, lang))),
        ("howpublished", "\\url{" + cited.permalink + "}"),
        ("url", cited.permalink),
        ("urldate", cited.accessed.isoformat()),
        (
            "note",
            bibtex_escape(
                f"Dataset {cited.publisher}/{cited.dataset} "
                f"({_container(cited, lang)}), version {cited.version}, "
                f"content SHA-256 {cited.content_sha256}"
            ),
        ),
    ]
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{bibtex_key(cited)},\n{body}\n}}"


def _date_parts(value: date) -> dict[str, list[list[int]]]:
    return {"date-parts": [[value.year, value.month, value.day]]}


def csl_item(cited: CitedFactor, lang: str = "en") -> dict[str, Any]:
    """One CSL-JSON item of type `dataset`."""
    return {
        "id": cited.factor_id,
        "type": "dataset",
        "title": _title(cited, lang),
        "author": [{"literal": _author(cited, lang)}],
        "container-title": _container(cited, lang),
        "publisher": _site(cited, lang),
        "version": cited.version,
        "issued": _date_parts(cited.published_at.date()),
        "accessed": _date_parts(cited.accessed),
        "URL": cited.permalink,
        "language": "zh-CN" if lang == "zh" else "en",
        "note": (
            f"Dataset {cited.publisher}/{cited.dataset} version {cited.version}; "
            f"content SHA-256 {cited.content_sha256}"
        ),
    }


def csl_json(cited: CitedFactor, lang: str = "en") -> str:
    """CSL-JSON: a one-item array, indented for reading."""
    return json.dumps([csl_item(cited, lang)], ensure_ascii=False, indent=2)


_STYLES: dict[CitationStyle, Callable[[CitedFactor, str], str]] = {
    "gb7714": gb7714,
    "apa": apa,
    "bibtex": bibtex,
    "csl-json": csl_json,
}


def cite(cited: CitedFactor, style: CitationStyle, lang: str) -> str:
    """The citation text in one style and language."""
    return _STYLES[style](cited, lang)
