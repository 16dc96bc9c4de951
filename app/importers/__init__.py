"""Importers: a publisher's own file (its sheets, columns, names, units, scopes and gases)
read as rows of the upload format. Validation, storage and provenance stay the upload path's
(app.publishing); an importer only maps. The registry names each source format."""

from __future__ import annotations

from app.importers.base import (
    GwpChoice,
    ImportedRow,
    Importer,
    ImportFileError,
    SkippedRow,
    SourceCell,
)
from app.importers.desnz import DesnzFlatImporter
from app.importers.epa_hub import EpaHubImporter
from app.importers.epa_supply_chain import EpaSupplyChainImporter
from app.importers.mee import MeeElectricityImporter
from app.importers.nga import NgaImporter
from app.importers.olca_jsonld import OlcaJsonLdImporter

IMPORTERS: dict[str, Importer] = {
    importer.name: importer
    for importer in (
        DesnzFlatImporter(),
        MeeElectricityImporter(),
        EpaSupplyChainImporter(),
        EpaHubImporter(),
        NgaImporter(),
        OlcaJsonLdImporter(),
    )
}

__all__ = [
    "IMPORTERS",
    "GwpChoice",
    "ImportFileError",
    "ImportedRow",
    "Importer",
    "SkippedRow",
    "SourceCell",
]
