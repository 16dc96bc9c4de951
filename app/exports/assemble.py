"""A snapshot's files assembled from its releases' finished export files, without re-encoding.

A national snapshot is the concatenation of its releases' rows, and every release already has
(or gets once, on first need) its own Parquet file, Arrow IPC stream and Arrow IPC file in
the same export schema, written with the same settings. So:

- ``factors.parquet``: each release's row groups are copied byte for byte (their pages are
  self-contained), followed by their page indexes, and a new footer: the snapshot's schema and
  key-value metadata, and each copied row group's metadata with its offsets moved to where
  its bytes now are. The footer is Thrift (compact protocol); the small reader and writer
  below keep every field they do not change exactly as read.
- ``factors.arrows``: the snapshot's schema message, then each release's dictionary and record
  batch messages as they are (a stream may replace a dictionary between batches), then the
  end-of-stream marker.
- ``factors.arrow``: an IPC file has one dictionary per column for all its batches, so each
  batch is read and its dictionary columns remapped onto the snapshot's dictionaries (the
  union of the releases' small dictionaries) before it is written again.

Memory holds one copy buffer, or one batch and the dictionaries, whatever the snapshot's size.
Each writer hashes the bytes as it writes them, so the files need not be read again.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

COPY_BUFFER = 4 << 20
PARQUET_MAGIC = b"PAR1"
IPC_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


class AssemblyError(ValueError):
    """A source file cannot be assembled as it is (another schema or layout)."""


@dataclass(frozen=True)
class Assembled:
    sha256: str
    bytes: int
    rows: int


class _HashingWriter:
    """A file being written, hashed as it goes."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("wb")
        self.digest = hashlib.sha256()
        self.position = 0

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.position += len(data)

    def copy(self, source: Any, start: int, length: int) -> None:
        source.seek(start)
        while length:
            chunk = source.read(min(COPY_BUFFER, length))
            if not chunk:
                raise AssemblyError("a source file ended early")
            self.write(chunk)
            length -= len(chunk)

    def close(self, rows: int) -> Assembled:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return Assembled(self.digest.hexdigest(), self.position, rows)


# --------------------------------------------------------------------------- Thrift compact

# Compact protocol type ids.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
ThriftStruct = dict[int, tuple[int, Any]]  # field id -> (type id, value)


class _ThriftReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def _varint(self) -> int:
        shift = result = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)

    def _value(self, kind: int) -> Any:
        if kind == _BYTE:
            return self._byte()
        if kind in (_I16, _I32, _I64):
            return self._zigzag()
        if kind == _DOUBLE:
            self.pos += 8
            return self.data[self.pos - 8 : self.pos]
        if kind == _BINARY:
            size = self._varint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if kind in (_LIST, _SET):
            header = self._byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self._varint()
            # A boolean element is one byte, kept as read.
            read = self._byte if element in (_TRUE, _FALSE) else lambda: self._value(element)
            return element, [read() for _ in range(size)]
        if kind == _MAP:
            size = self._varint()
            if not size:
                return 0, 0, []
            types = self._byte()
            key, value = types >> 4, types & 0x0F
            return key, value, [(self._value(key), self._value(value)) for _ in range(size)]
        if kind == _STRUCT:
            return self.struct()
        raise AssemblyError(f"unknown Thrift type {kind}")

    def struct(self) -> ThriftStruct:
        fields: ThriftStruct = {}
        last = 0
        while True:
            header = self._byte()
            if header == 0:
                return fields
            kind, delta = header & 0x0F, header >> 4
            field_id = last + delta if delta else self._zigzag()
            last = field_id
            fields[field_id] = (
                kind,
                kind == _TRUE if kind in (_TRUE, _FALSE) else self._value(kind),
            )


class _ThriftWriter:
    def __init__(self) -> None:
        self.out = bytearray()

    def _varint(self, value: int) -> None:
        while value > 0x7F:
            self.out.append((value & 0x7F) | 0x80)
            value >>= 7
        self.out.append(value)

    def _zigzag(self, value: int) -> None:
        self._varint((value << 1) ^ (value >> 63))

    def _value(self, kind: int, value: Any) -> None:
        if kind == _BYTE:
            self.out.append(value)
        elif kind in (_I16, _I32, _I64):
            self._zigzag(value)
        elif kind == _DOUBLE:
            self.out += value
        elif kind == _BINARY:
            self._varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            element, items = value
            if len(items) < 15:
                self.out.append(len(items) << 4 | element)
            else:
                self.out.append(0xF0 | element)
                self._varint(len(items))
            for item in items:
                if element in (_TRUE, _FALSE):
                    self.out.append(item)
                else:
                    self._value(element, item)
        elif kind == _MAP:
            key, value_kind, pairs = value
            self._varint(len(pairs))
            if pairs:
                self.out.append(key << 4 | value_kind)
                for k, v in pairs:
                    self._value(key, k)
                    self._value(value_kind, v)
        elif kind == _STRUCT:
            self.struct(value)
        else:
            raise AssemblyError(f"unknown Thrift type {kind}")

    def struct(self, fields: ThriftStruct) -> None:
        last = 0
        for field_id in sorted(fields):
            kind, value = fields[field_id]
            if kind in (_TRUE, _FALSE):
                kind = _TRUE if value else _FALSE
            delta = field_id - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | kind)
            else:
                self.out.append(kind)
                self._zigzag(field_id)
            last = field_id
            if kind not in (_TRUE, _FALSE):
                self._value(kind, value)
        self.out.append(0)


def thrift_decode(data: bytes) -> ThriftStruct:
    return _ThriftReader(data).struct()


def thrift_encode(fields: ThriftStruct) -> bytes:
    writer = _ThriftWriter()
    writer.struct(fields)
    return bytes(writer.out)


# --------------------------------------------------------------------------- Parquet

# parquet.thrift field ids used here.
_FILE_SCHEMA, _FILE_NUM_ROWS, _FILE_ROW_GROUPS = 2, 3, 4
_RG_COLUMNS, _RG_NUM_ROWS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 3, 5, 7
_CC_FILE_PATH, _CC_FILE_OFFSET, _CC_META = 1, 2, 3
_CC_OFFSET_INDEX, _CC_OFFSET_INDEX_LENGTH = 4, 5
_CC_COLUMN_INDEX, _CC_COLUMN_INDEX_LENGTH = 6, 7
_CC_ENCRYPTED = (8, 9)
_MD_COMPRESSED_SIZE, _MD_DATA_PAGE, _MD_INDEX_PAGE, _MD_DICTIONARY_PAGE = 7, 9, 10, 11
_MD_BLOOM_FILTER = 14
_OI_PAGES, _PAGE_OFFSET = 1, 1


def parquet_footer(path: Path) -> ThriftStruct:
    """A Parquet file's FileMetaData, decoded."""
    with path.open("rb") as handle:
        handle.seek(-8, os.SEEK_END)
        tail = handle.read(8)
        if tail[4:] != PARQUET_MAGIC:
            raise AssemblyError(f"{path.name} is not a Parquet file")
        (length,) = struct.unpack("<I", tail[:4])
        handle.seek(-8 - length, os.SEEK_END)
        return thrift_decode(handle.read(length))


def parquet_template(schema: pa.Schema, options: dict[str, Any]) -> ThriftStruct:
    """The footer pyarrow writes for `schema` (its metadata and the stored Arrow schema
    included) with these options, for a file of no rows."""
    sink = pa.BufferOutputStream()
    pq.ParquetWriter(sink, schema, **options).close()
    data = sink.getvalue().to_pybytes()
    (length,) = struct.unpack("<I", data[-8:-4])
    return thrift_decode(data[-8 - length : -8])


def _shift(fields: ThriftStruct, field_id: int, delta: int) -> None:
    if field_id in fields:
        kind, value = fields[field_id]
        fields[field_id] = (kind, value + delta)


def assemble_parquet(target: Path, sources: Sequence[Path], template: ThriftStruct) -> Assembled:
    """One Parquet file holding every row group of `sources`, in order, with the schema and
    key-value metadata of `template` (see `parquet_template`)."""
    schema = thrift_encode({1: template[_FILE_SCHEMA]})
    out = _HashingWriter(target)
    row_groups: list[ThriftStruct] = []
    # (column chunk, source path, offset index bytes, column index bytes), written after the
    # row groups as parquet-cpp lays them out: column indexes, then offset indexes.
    indexes: list[tuple[ThriftStruct, bytes | None, bytes | None]] = []
    rows = 0
    try:
        out.write(PARQUET_MAGIC)
        for source in sources:
            footer = parquet_footer(source)
            if thrift_encode({1: footer[_FILE_SCHEMA]}) != schema:
                raise AssemblyError(f"{source.name}: another Parquet schema")
            with source.open("rb") as handle:
                for row_group in footer.get(_FILE_ROW_GROUPS, (0, (_STRUCT, [])))[1][1]:
                    columns: list[ThriftStruct] = row_group[_RG_COLUMNS][1][1]
                    spans = []
                    for chunk in columns:
                        if any(key in chunk for key in (_CC_FILE_PATH, *_CC_ENCRYPTED)):
                            raise AssemblyError(f"{source.name}: external or encrypted chunk")
                        meta: ThriftStruct = chunk[_CC_META][1]
                        if _MD_BLOOM_FILTER in meta:
                            raise AssemblyError(f"{source.name}: bloom filters")
                        first = meta.get(_MD_DICTIONARY_PAGE, meta[_MD_DATA_PAGE])[1]
                        first = min(first, meta[_MD_DATA_PAGE][1])
                        spans.append((first, meta[_MD_COMPRESSED_SIZE][1]))
                    start = min(first for first, _ in spans)
                    end = max(first + size for first, size in spans)
                    if end - start != sum(size for _, size in spans):
                        raise AssemblyError(f"{source.name}: a row group is not contiguous")
                    delta = out.position - start
                    out.copy(handle, start, end - start)
                    for chunk in columns:
                        meta = chunk[_CC_META][1]
                        for field_id in (_MD_DATA_PAGE, _MD_INDEX_PAGE, _MD_DICTIONARY_PAGE):
                            _shift(meta, field_id, delta)
                        _shift(chunk, _CC_FILE_OFFSET, delta)
                        offset_index = column_index = None
                        if _CC_OFFSET_INDEX in chunk:
                            handle.seek(chunk[_CC_OFFSET_INDEX][1])
                            decoded = thrift_decode(handle.read(chunk[_CC_OFFSET_INDEX_LENGTH][1]))
                            for page in decoded[_OI_PAGES][1][1]:
                                _shift(page, _PAGE_OFFSET, delta)
                            offset_index = thrift_encode(decoded)
                        if _CC_COLUMN_INDEX in chunk:
                            handle.seek(chunk[_CC_COLUMN_INDEX][1])
                            column_index = handle.read(chunk[_CC_COLUMN_INDEX_LENGTH][1])
                        indexes.append((chunk, offset_index, column_index))
                    _shift(row_group, _RG_FILE_OFFSET, delta)
                    row_group[_RG_ORDINAL] = (_I16, len(row_groups))
                    row_groups.append(row_group)
                    rows += row_group[_RG_NUM_ROWS][1]
        for chunk, _, column_index in indexes:
            if column_index is not None:
                chunk[_CC_COLUMN_INDEX] = (_I64, out.position)
                chunk[_CC_COLUMN_INDEX_LENGTH] = (_I32, len(column_index))
                out.write(column_index)
        for chunk, offset_index, _ in indexes:
            if offset_index is not None:
                chunk[_CC_OFFSET_INDEX] = (_I64, out.position)
                chunk[_CC_OFFSET_INDEX_LENGTH] = (_I32, len(offset_index))
                out.write(offset_index)
        footer = dict(template)
        footer[_FILE_NUM_ROWS] = (_I64, rows)
        footer[_FILE_ROW_GROUPS] = (_LIST, (_STRUCT, row_groups))
        encoded = thrift_encode(footer)
        out.write(encoded)
        out.write(struct.pack("<I", len(encoded)) + PARQUET_MAGIC)
    except BaseException:
        out.handle.close()
        raise
    return out.close(rows)


# --------------------------------------------------------------------------- Arrow IPC


def assemble_arrow_stream(target: Path, schema: pa.Schema, sources: Sequence[Path]) -> Assembled:
    """One Arrow IPC stream: `schema` (with its metadata), then every dictionary and record
    batch message of each source stream as it is (compressed buffers untouched)."""
    out = _HashingWriter(target)
    try:
        out.write(schema.serialize().to_pybytes())
        for source in sources:
            # Read, not mapped: a mapped file's touched pages would count as the server's memory.
            with pa.OSFile(str(source)) as handle:
                reader = ipc.MessageReader.open_stream(handle)
                first = reader.read_next_message()
                if first.type != "schema" or not ipc.read_schema(first).equals(schema):
                    raise AssemblyError(f"{source.name}: another Arrow schema")
                while True:
                    try:
                        message = reader.read_next_message()
                    except StopIteration:
                        break
                    out.write(message.serialize().to_pybytes())
        out.write(IPC_END_OF_STREAM)
    except BaseException:
        out.handle.close()
        raise
    return out.close(0)


def assemble_arrow_file(
    target: Path, schema: pa.Schema, sources: Sequence[Path], options: ipc.IpcWriteOptions
) -> Assembled:
    """One Arrow IPC file of every batch of the source IPC files, with `schema`. Each source
    file has one dictionary per dictionary column; the snapshot's is their union in order (so
    the first source's indices stay as they are) and the others' indices are remapped."""
    encoded = [i for i, field in enumerate(schema) if pa.types.is_dictionary(field.type)]
    seen: dict[int, dict[Any, None]] = {index: {} for index in encoded}
    for source in sources:
        with pa.OSFile(str(source)) as handle:
            reader = ipc.open_file(handle)
            if not reader.schema.equals(schema):
                raise AssemblyError(f"{source.name}: another Arrow schema")
            if reader.num_record_batches:
                batch = reader.get_batch(0)
                for index in encoded:
                    seen[index].update(dict.fromkeys(batch.column(index).dictionary.to_pylist()))
    dictionaries = {
        index: pa.array(list(values), type=schema.field(index).type.value_type)
        for index, values in seen.items()
    }
    rows = 0
    with (
        pa.OSFile(str(target), "wb") as sink,
        ipc.new_file(sink, schema, options=options) as writer,
    ):
        for source in sources:
            with pa.OSFile(str(source)) as handle:
                reader = ipc.open_file(handle)
                for number in range(reader.num_record_batches):
                    batch = reader.get_batch(number)
                    columns = list(batch.columns)
                    for index in encoded:
                        column = columns[index]
                        unified = dictionaries[index]
                        own = column.dictionary
                        if len(own) <= len(unified) and unified.slice(0, len(own)).equals(own):
                            positions = column.indices  # already the snapshot's positions
                        else:
                            mapping = pc.index_in(own, value_set=unified).cast(
                                schema.field(index).type.index_type
                            )
                            positions = mapping.take(column.indices)
                        columns[index] = pa.DictionaryArray.from_arrays(positions, unified)
                    writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                    rows += batch.num_rows
    with target.open("rb") as handle:
        os.fsync(handle.fileno())
        digest = hashlib.file_digest(handle, "sha256")
    return Assembled(digest.hexdigest(), target.stat().st_size, rows)
