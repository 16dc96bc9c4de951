"""What a Parquet upload will cost to read, judged from its metadata before any data is read.

A few kilobytes of Parquet can declare gigabytes of values: a column of one long string
repeated, compressed or dictionary-encoded, inflates to its full size as it is decoded. The
footer says how many rows there are and how large each column chunk is once decompressed; for
a dictionary-encoded column, whose decompressed pages are only indices, the decoded size is
estimated from the longest value its statistics record. A file past the bounds is refused
with one file-level problem (422), and nothing of it is read.

The rows are then read in batches (`upload_formats._BATCH_ROWS`), so the memory a file
within these bounds takes is a batch, not the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq

from app.publishing.records import RowProblem

# A factor's row decodes to well under 4 KB; 64 KB on average is a file built to inflate.
MAX_BYTES_PER_ROW = 64 * 1024
MAX_ROW_GROUPS = 10_000


@dataclass(frozen=True)
class UploadLimits:
    max_rows: int = 2_000_000
    max_decoded_bytes: int = 512 * 1024 * 1024


class UploadTooCostly(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = RowProblem(row=None, column=None, code=code, detail=detail)


def _column_decoded_bytes(column: pq.ColumnChunkMetaData) -> int:
    """An upper bound of the column chunk's size once decoded, as far as its metadata tells."""
    size = int(column.total_uncompressed_size)
    values = int(column.num_values)
    if column.physical_type != "BYTE_ARRAY":
        return max(size, values * 16)
    if not any("DICTIONARY" in encoding for encoding in column.encodings):
        return size
    statistics = column.statistics
    if statistics is not None and statistics.null_count == values:
        return size
    if statistics is not None and statistics.has_min_max:
        longest = max(_value_bytes(statistics.min), _value_bytes(statistics.max))
        return max(size, longest * values)
    # No statistics (writers leave them out for values past 4 KB): a value is at most as long
    # as the dictionary holding it, which is part of the chunk's uncompressed size.
    return max(size, size * values)


def _value_bytes(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes):
        return len(value)
    return 8


def check_parquet_metadata(metadata: pq.FileMetaData, limits: UploadLimits) -> None:
    """Raise UploadTooCostly if the file declares more than an upload may cost to read."""
    rows = int(metadata.num_rows)
    if rows > limits.max_rows:
        raise UploadTooCostly(
            "too_many_rows",
            f"the file has {rows} rows; an upload may have at most {limits.max_rows}",
        )
    if metadata.num_row_groups > MAX_ROW_GROUPS:
        raise UploadTooCostly(
            "too_many_row_groups",
            f"the file has {metadata.num_row_groups} row groups; at most {MAX_ROW_GROUPS}",
        )
    decoded = 0
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            decoded += _column_decoded_bytes(group.column(column_index))
    mib = 1024 * 1024
    if decoded > limits.max_decoded_bytes:
        raise UploadTooCostly(
            "uncompressed_too_large",
            f"the file's columns decode to about {decoded / mib:.0f} MB; an upload may "
            f"decode to at most {limits.max_decoded_bytes / mib:.0f} MB",
        )
    if rows and decoded / rows > MAX_BYTES_PER_ROW:
        raise UploadTooCostly(
            "rows_too_large",
            f"the file's rows decode to about {decoded / rows / 1024:.0f} KB each; at most "
            f"{MAX_BYTES_PER_ROW // 1024} KB",
        )
