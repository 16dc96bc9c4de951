"""Citations of a factor: GB/T 7714-2015, APA, BibTeX and CSL-JSON, as pure functions."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest

from app.web.citation import (
    CITATION_STYLES,
    CitedFactor,
    apa,
    bibtex,
    bibtex_escape,
    bibtex_key,
    cite,
    csl_item,
    csl_json,
    gb7714,
)

HASH = "a" * 64
PERMALINK = "https://efdb.example/factors/synthetic-pub/synthetic-factors/grid-2022@1.2.0"


def cited(**overrides: object) -> CitedFactor:
    values: dict[str, object] = {
        "publisher": "synthetic-pub",
        "dataset": "synthetic-factors",
        "factor_code": "grid-2022",
        "version": "1.2.0",
        "content_sha256": HASH,
        "published_at": datetime(2025, 3, 4, 10, 30, tzinfo=UTC),
        "permalink": PERMALINK,
        "accessed": date(2026, 11, 25),
        "publisher_name_zh": "合成测试发布机构",
        "publisher_name_en": "Synthetic Test Publisher",
        "dataset_title_zh": "合成测试数据集",
        "dataset_title_en": "Synthetic test dataset",
        "factor_name_zh": "合成测试电网因子",
        "factor_name_en": "Synthetic grid factor",
        "site_name_zh": "国家排放因子数据库",
        "site_name_en": "National Emission Factor Database",
    }
    values.update(overrides)
    return CitedFactor(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("style", CITATION_STYLES)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_style_names_the_permalink_version_and_content_hash(style: str, lang: str) -> None:
    text = cite(cited(), style, lang)  # type: ignore[arg-type]
    assert PERMALINK in text
    assert "1.2.0" in text
    assert HASH in text


def test_gb7714_in_chinese_is_a_contribution_to_an_online_dataset() -> None:
    assert gb7714(cited(), "zh") == (
        "合成测试发布机构. 合成测试电网因子[DS/OL]//合成测试发布机构. 合成测试数据集. 1.2.0版. "
        f"国家排放因子数据库, 2025-03-04[2026-11-25]. {PERMALINK}. 内容哈希 SHA-256: {HASH}."
    )


def test_gb7714_in_english_uses_the_english_names() -> None:
    text = gb7714(cited(), "en")
    assert text.startswith(
        "Synthetic Test Publisher. Synthetic grid factor[DS/OL]//Synthetic Test Publisher. "
        "Synthetic test dataset. Version 1.2.0. National Emission Factor Database, "
        "2025-03-04[2026-11-25]. "
    )


def test_a_missing_name_falls_back_to_the_other_language_then_the_code() -> None:
    only_english = cited(factor_name_zh=None, publisher_name_zh=None)
    assert "Synthetic grid factor[DS/OL]" in gb7714(only_english, "zh")
    assert "Synthetic Test Publisher." in gb7714(only_english, "zh")
    nameless = cited(factor_name_zh=None, factor_name_en=None)
    assert "grid-2022[DS/OL]" in gb7714(nameless, "en")


def test_no_doubled_full_stop_after_a_name_ending_in_one() -> None:
    text = gb7714(cited(publisher_name_en="Example Ltd."), "en")
    assert "Example Ltd.." not in text
    assert text.startswith("Example Ltd. Synthetic grid factor")


def test_apa_data_set_reference() -> None:
    assert apa(cited(), "en") == (
        "Synthetic Test Publisher. (2025). Synthetic grid factor "
        f"(Version 1.2.0; content SHA-256 {HASH}) [Data set]. In Synthetic test dataset. "
        f"National Emission Factor Database. {PERMALINK}"
    )


def test_bibtex_entry_parses_as_fields_and_keeps_the_organisation_whole() -> None:
    entry = bibtex(cited(), "en")
    assert entry.startswith("@misc{synthetic-pub_synthetic-factors_grid-2022_1-2-0,\n")
    assert entry.endswith("\n}")
    fields = dict(re.findall(r"^  (\w+) = \{(.*)\},?$", entry, flags=re.MULTILINE))
    assert fields["author"] == "{Synthetic Test Publisher}"
    assert fields["year"] == "2025"
    assert fields["version"] == "1.2.0"
    assert fields["url"] == PERMALINK
    assert fields["urldate"] == "2026-11-25"
    assert HASH in fields["note"]
    # Braces balance, so BibTeX reads the entry to its end.
    assert entry.count("{") == entry.count("}")


def test_bibtex_escapes_tex_specials() -> None:
    assert bibtex_escape("50% & more_{x}#$~^\\") == (
        r"50\% \& more\_\{x\}\#\$\textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    entry = bibtex(cited(factor_name_en="Grid {50%} & co"), "en")
    assert r"title = {{Grid \{50\%\} \& co}}" in entry
    assert entry.count("{") - entry.count(r"\{") == entry.count("}") - entry.count(r"\}")


def test_bibtex_key_is_plain_ascii() -> None:
    assert bibtex_key(cited(factor_code="a.b:c")) == "synthetic-pub_synthetic-factors_a-b-c_1-2-0"


def test_csl_json_is_a_one_item_array_of_type_dataset() -> None:
    items = json.loads(csl_json(cited(), "zh"))
    assert items == [csl_item(cited(), "zh")]
    (item,) = items
    assert item["type"] == "dataset"
    assert item["id"] == "synthetic-pub/synthetic-factors/grid-2022@1.2.0"
    assert item["title"] == "合成测试电网因子"
    assert item["author"] == [{"literal": "合成测试发布机构"}]
    assert item["version"] == "1.2.0"
    assert item["issued"] == {"date-parts": [[2025, 3, 4]]}
    assert item["accessed"] == {"date-parts": [[2026, 11, 25]]}
    assert item["URL"] == PERMALINK
    assert item["language"] == "zh-CN"
    assert HASH in item["note"]
