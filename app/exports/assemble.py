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
- ``factors.arrow``: an IPC file has one dictionary per column for all its batches: the
  snapshot's are the union of the releases' (small) dictionaries, in order, so the first
  release's batches are copied as they are, and in the others only the index buffers of the
  dictionary columns that need it are decompressed, remapped and compressed again. The head
  (schema, dictionaries) and the footer come from a file of as many empty batches written by
  pyarrow, whose footer's record batch blocks are then pointed at the real batches.

Memory holds one copy buffer or one batch, and the dictionaries, whatever the snapshot's size.
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


# --------------------------------------------------------------------------- Arrow IPC file
#
# The IPC file's batches are copied as they are too, but for the index buffers of dictionary
# columns in releases whose dictionaries are not where the snapshot's put them: those buffers
# alone are decompressed, remapped and compressed again. The flatbuffers touched (Footer,
# Message, RecordBatch) are patched in place: only fixed-size structs and scalars change.

IPC_FILE_MAGIC = b"ARROW1"
_NO_COMPRESSION = -1


def _u32(data: bytes | bytearray, at: int) -> int:
    value: int = struct.unpack_from("<I", data, at)[0]
    return value


def _field(data: bytes | bytearray, table: int, index: int) -> int | None:
    """Where field `index` of the flatbuffer table at `table` is (None: absent, default)."""
    vtable = table - struct.unpack_from("<i", data, table)[0]
    size = struct.unpack_from("<H", data, vtable)[0]
    if 4 + 2 * index >= size:
        return None
    offset = struct.unpack_from("<H", data, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _table(data: bytes | bytearray, table: int, index: int) -> int:
    at = _field(data, table, index)
    if at is None:
        raise AssemblyError("an Arrow flatbuffer lacks a table it needs")
    return at + _u32(data, at)


def _vector(data: bytes | bytearray, table: int, index: int) -> tuple[int, int]:
    """(position of the first element, number of elements) of a vector field."""
    start = _table(data, table, index)
    return start + 4, _u32(data, start)


def _file_blocks(data: bytes, footer: int) -> list[tuple[int, int, int]]:
    """An IPC file footer's record batch blocks: (offset, metadata length, body length)."""
    first, count = _vector(data, footer, 3)
    return [struct.unpack_from("<qi4xq", data, first + 24 * n) for n in range(count)]


def _ipc_file_footer(path: Path) -> tuple[bytes, int]:
    with path.open("rb") as handle:
        handle.seek(-10, os.SEEK_END)
        tail = handle.read(10)
        if tail[4:] != IPC_FILE_MAGIC:
            raise AssemblyError(f"{path.name} is not an Arrow IPC file")
        (length,) = struct.unpack("<i", tail[:4])
        handle.seek(-10 - length, os.SEEK_END)
        footer = handle.read(length)
    return footer, _u32(footer, 0)


def _buffer_slots(schema: pa.Schema) -> dict[int, tuple[int, int]]:
    """For each dictionary column: (its validity buffer, its index buffer) in a record
    batch's buffer list (flat schema: validity + values, + offsets for text)."""
    slots: dict[int, tuple[int, int]] = {}
    position = 0
    for index, field in enumerate(schema):
        kind = field.type
        if pa.types.is_dictionary(kind):
            slots[index] = (position, position + 1)
            position += 2
        elif pa.types.is_string(kind) or pa.types.is_binary(kind):
            position += 3
        elif pa.types.is_primitive(kind) and not pa.types.is_boolean(kind):
            position += 2
        else:
            raise AssemblyError(f"column {field.name}: no raw layout for {kind}")
    return slots


def _batch_length(meta: bytes | bytearray) -> int:
    """A record batch message's row count (absent from the flatbuffer when 0)."""
    at = _field(meta, _table(meta, _u32(meta, 0), 2), 0)
    return 0 if at is None else int(struct.unpack_from("<q", meta, at)[0])


def _decompressed(codec: pa.Codec, data: bytes) -> bytes:
    if not data:
        return b""
    (size,) = struct.unpack_from("<q", data, 0)
    if size == _NO_COMPRESSION:
        return data[8:]
    result: bytes = codec.decompress(data[8:], decompressed_size=size, asbytes=True)
    return result


def _remapped_message(
    message: bytes,
    metadata_length: int,
    rows_and_maps: dict[tuple[int, int], pa.Array],
    codec: pa.Codec,
) -> bytes:
    """A record batch message (prefix, flatbuffer, body) with the index buffers named in
    `rows_and_maps` ((validity slot, index slot) -> old-to-new positions) remapped."""
    meta = bytearray(message[8:metadata_length])
    body = message[metadata_length:]
    root = _u32(meta, 0)
    header = _table(meta, root, 2)  # Message.header: the RecordBatch
    length = _batch_length(meta)
    first, count = _vector(meta, header, 2)  # RecordBatch.buffers
    buffers = [struct.unpack_from("<qq", meta, first + 16 * n) for n in range(count)]
    pieces = [body[offset : offset + size] for offset, size in buffers]
    for (validity_slot, index_slot), mapping in rows_and_maps.items():
        indices = _decompressed(codec, pieces[index_slot])
        if not indices or not len(mapping):
            continue
        validity = _decompressed(codec, pieces[validity_slot])
        array = pa.Array.from_buffers(
            pa.int32(),
            length,
            [pa.py_buffer(validity) if validity else None, pa.py_buffer(indices)],
        )
        moved = mapping.take(array).buffers()[1]
        assert moved is not None
        packed = moved.to_pybytes()[: 4 * length]
        pieces[index_slot] = struct.pack("<q", len(packed)) + codec.compress(packed, asbytes=True)
    out = bytearray()
    for n, piece in enumerate(pieces):
        struct.pack_into("<qq", meta, first + 16 * n, len(out), len(piece))
        out += piece
        out += b"\0" * (-len(out) % 8)
    body_length = _field(meta, root, 3)
    if body_length is None:
        raise AssemblyError("a record batch message without a body length")
    struct.pack_into("<q", meta, body_length, len(out))
    return message[:8] + bytes(meta) + bytes(out)


def assemble_arrow_file(
    target: Path, schema: pa.Schema, sources: Sequence[Path], options: ipc.IpcWriteOptions
) -> Assembled:
    """One Arrow IPC file of every batch of the source IPC files, with `schema`. Each source
    file has one dictionary per dictionary column; the snapshot's is their union in order
    (so the first source's indices stay as they are), and other sources' index buffers are
    remapped onto it. Every other buffer is copied as it is."""
    slots = _buffer_slots(schema)
    seen: dict[int, dict[Any, None]] = {index: {} for index in slots}
    own: list[dict[int, pa.Array]] = []
    for source in sources:
        with pa.OSFile(str(source)) as handle:
            reader = ipc.open_file(handle)
            if not reader.schema.equals(schema):
                raise AssemblyError(f"{source.name}: another Arrow schema")
            dictionaries = {}
            if reader.num_record_batches:
                batch = reader.get_batch(0)
                dictionaries = {index: batch.column(index).dictionary for index in slots}
                for index, values in dictionaries.items():
                    seen[index].update(dict.fromkeys(values.to_pylist()))
            own.append(dictionaries)
    unified = {
        index: pa.array(list(values), type=schema.field(index).type.value_type)
        for index, values in seen.items()
    }
    # Each source's remapping: (validity slot, index slot) -> old-to-new positions, for the
    # columns whose dictionary is not a prefix of the snapshot's.
    maps: list[dict[tuple[int, int], pa.Array]] = []
    for dictionaries in own:
        remap = {}
        for index, values in dictionaries.items():
            if not unified[index].slice(0, len(values)).equals(values):
                positions = pc.index_in(values, value_set=unified[index]).cast(pa.int32())
                remap[slots[index]] = positions
        maps.append(remap)
    blocks = [_file_blocks(*_ipc_file_footer(source)) for source in sources]

    # A file of the same number of (empty) batches with the snapshot's schema and
    # dictionaries, written by pyarrow: its head (magic, schema, dictionaries) and footer are
    # the snapshot's, once the footer's record batch blocks say where the real batches are.
    shadow = pa.BufferOutputStream()
    empty = [
        pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), unified[index])
        if index in unified
        else pa.array([], field.type)
        for index, field in enumerate(schema)
    ]
    with ipc.new_file(shadow, schema, options=options) as writer:
        for _ in range(sum(len(b) for b in blocks)):
            writer.write_batch(pa.record_batch(empty, schema=schema))
    data = shadow.getvalue().to_pybytes()
    (footer_length,) = struct.unpack_from("<i", data, len(data) - 10)
    footer_start = len(data) - 10 - footer_length
    footer = bytearray(data[footer_start : footer_start + footer_length])
    root = _u32(footer, 0)
    first_block, count = _vector(footer, root, 3)
    head_end = struct.unpack_from("<q", footer, first_block)[0] if count else footer_start

    codec = pa.Codec("zstd")
    out = _HashingWriter(target)
    rows = 0
    try:
        out.write(data[:head_end])
        number = 0
        for source, source_blocks, remap in zip(sources, blocks, maps, strict=True):
            with source.open("rb") as handle:
                for offset, metadata_length, body_length in source_blocks:
                    handle.seek(offset)
                    message = handle.read(metadata_length + body_length)
                    if remap:
                        message = _remapped_message(message, metadata_length, remap, codec)
                    rows += _batch_length(message[8:metadata_length])
                    struct.pack_into(
                        "<qi4xq",
                        footer,
                        first_block + 24 * number,
                        out.position,
                        metadata_length,
                        len(message) - metadata_length,
                    )
                    out.write(message)
                    number += 1
        out.write(bytes(footer))
        out.write(struct.pack("<i", footer_length) + IPC_FILE_MAGIC)
    except BaseException:
        out.handle.close()
        raise
    return out.close(rows)
