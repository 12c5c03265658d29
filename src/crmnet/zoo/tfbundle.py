"""Read a TensorFlow SavedModel's variables without TensorFlow.

A SavedModel directory written by ``model.save(path)`` holds ``variables/variables.index`` (a sorted
key→value table in the LevelDB "SSTable" format), the tensor bytes in
``variables/variables.data-SSSSS-of-NNNNN``, and, for Keras models, ``keras_metadata.pb`` (the model's
config JSON per saved object). This module parses all three by hand:

* **Table** (:func:`read_table`): a 48-byte footer (two varint block handles + magic
  ``0xdb4775248b80fb57``) points to an index block whose entries point to data blocks; every block is
  ``entries | restart offsets (uint32) | restart count (uint32)`` followed by a 5-byte trailer
  (compression type, masked CRC32C). Keys are prefix-compressed against the previous key.
* **Entries** (:class:`TensorEntry`): the value under each tensor name is a ``BundleEntryProto``
  (dtype, shape, shard, offset, size, masked CRC32C); the empty key holds the ``BundleHeaderProto``.
* **Object graph** (:meth:`TensorBundle.object_graph`): the ``_CHECKPOINTABLE_OBJECT_GRAPH`` string tensor
  is a ``TrackableObjectGraph`` proto naming every saved object, its children and its variables' keys.
* **Protobuf** (:func:`parse_proto`): the wire format is only varints, fixed-width and length-delimited
  fields, so a 30-line decoder replaces the ``protobuf`` package.

CRC32C is checked for every block and (optionally) every tensor with the ``google-crc32c`` package.

**Why a hand-written protobuf decoder but a package for CRC32C** (issue 10 item 6, weighed):
``google-crc32c`` is a small, well-kept C extension with no TensorFlow behind it; it replaced ~110 lines
of vectorised numpy CRC code and checks 100 MB in 0.07 s instead of ~1 s. The ``protobuf`` package does
not fit the same way: decoding ``BundleEntryProto``, ``TrackableObjectGraph`` and ``SavedMetadata``
with it needs those messages' generated classes, which ship only with TensorFlow, so crmnet would have
to vendor TensorFlow's ``.proto`` files and their generated code (hundreds of lines, tied to the
protobuf runtime version) to replace a 30-line wire-format reader that needs only varints and
length-delimited fields and reads a handful of field numbers. The wire format is frozen; the
generated code is not.
Every malformed or truncated input raises :class:`crmnet.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.errors import CrmnetError, InputError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

# tensorflow/core/framework/types.proto; bfloat16 (14) is widened to float32 on read.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("float32"),
    2: np.dtype("float64"),
    3: np.dtype("int32"),
    4: np.dtype("uint8"),
    5: np.dtype("int16"),
    6: np.dtype("int8"),
    9: np.dtype("int64"),
    10: np.dtype("bool"),
    14: np.dtype("uint16"),
    17: np.dtype("uint16"),
    19: np.dtype("float16"),
    22: np.dtype("uint32"),
    23: np.dtype("uint64"),
}
DT_STRING = 7
DT_BFLOAT16 = 14


# ----------------------------------------------------------------------------------------------------
# Protobuf wire format


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the base-128 varint at ``buf[pos:]``; returns (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the buffer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def parse_proto(buf: bytes) -> dict[int, list]:
    """Decode one protobuf message into {field number: [values]}.

    Varint and fixed-width fields give ints; length-delimited fields give ``bytes`` (a nested message,
    a string or a packed array: the caller knows which). Groups (deprecated) are rejected.

    Parameters
    ----------
    buf : bytes
        The serialised message.

    Returns
    -------
    dict of int to list
        Every field's values, in the order they appear.
    """
    fields: dict[int, list] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise ValueError("fixed64 field runs past the end of the message")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise ValueError(f"field {number} of {size} bytes runs past the end of the message")
            value = bytes(buf[pos : pos + size])
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise ValueError("fixed32 field runs past the end of the message")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        fields.setdefault(number, []).append(value)
    return fields


def _first(fields: dict[int, list], number: int, default=None):
    values = fields.get(number)
    return values[-1] if values else default  # protobuf: the last occurrence of a scalar wins


def _text(fields: dict[int, list], number: int) -> str:
    return _first(fields, number, b"").decode("utf-8")


# ----------------------------------------------------------------------------------------------------
# CRC32C (Castagnoli)


def crc32c(data: bytes | np.ndarray) -> int:
    """CRC32C of one buffer (``crc32c(b"123456789") == 0xE3069283``), by the google-crc32c package.

    Its C implementation (hardware CRC instructions where the CPU has them) checks 100 MB in about
    0.07 s; the pure-Python fallback it installs on exotic platforms is slow but correct.

    Parameters
    ----------
    data : bytes or ndarray
        The buffer (an array is read as its raw bytes).

    Returns
    -------
    int
        The unmasked CRC32C.
    """
    try:
        import google_crc32c
    except ImportError:
        raise CrmnetError("reading TensorFlow tensor bundles needs google-crc32c (pip install 'crmnet[keras]')") from None
    # The C function takes bytes only (not memoryviews); the copy costs far less than the checksum.
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return int(google_crc32c.value(raw))


def crc32c_segments(data: np.ndarray, offsets, sizes) -> np.ndarray:
    """CRC32C of every segment ``data[offsets[i] : offsets[i] + sizes[i]]``; data (n,) uint8 → (len(offsets),) uint32.

    Parameters
    ----------
    data : ndarray, shape (n,), uint8
        The buffer.
    offsets, sizes : array-like of int, shape (k,)
        Where each segment starts and how long it is.

    Returns
    -------
    ndarray, shape (k,), uint32
        One CRC32C per segment.
    """
    return np.array([crc32c(data[o : o + s]) for o, s in zip(offsets, sizes, strict=True)], dtype=np.uint32)


def unmask_crc(masked: int) -> int:
    """Undo LevelDB's CRC masking (``rot15(crc) + 0xa282ead8``), used for blocks and tensor entries."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------------
# SSTable


def _read_block(buf: bytes, offset: int, size: int, path: Path, what: str) -> bytes:
    if offset + size + 5 > len(buf):
        raise InputError(
            path,
            f"{what} at byte {offset} ({size} bytes) runs past the end of the file "
            f"({len(buf)} bytes): the file is truncated",
        )
    contents = buf[offset : offset + size]
    kind = buf[offset + size]
    stored = int.from_bytes(buf[offset + size + 1 : offset + size + 5], "little")
    if crc32c(buf[offset : offset + size + 1]) != unmask_crc(stored):
        raise InputError(path, f"{what} at byte {offset} fails its CRC32C check: the file is corrupt")
    if kind != 0:
        raise InputError(path, f"{what} uses compression type {kind}; only uncompressed tables are supported")
    return contents


def _block_entries(block: bytes, path: Path, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise InputError(path, f"{what} is too short to hold its restart count")
    n_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise InputError(path, f"{what} claims {n_restarts} restart points, more than fit in the block")
    entries = []
    key = b""
    pos = 0
    try:
        while pos < limit:
            shared, pos = read_varint(block, pos)
            unshared, pos = read_varint(block, pos)
            value_len, pos = read_varint(block, pos)
            if shared > len(key) or pos + unshared + value_len > limit:
                raise ValueError("entry runs past the end of the block")
            key = key[:shared] + block[pos : pos + unshared]
            pos += unshared
            entries.append((key, block[pos : pos + value_len]))
            pos += value_len
    except ValueError as exc:
        raise InputError(path, f"{what} is malformed ({exc})") from None
    return entries


def read_table(path: str | Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table file, in key order.

    Parameters
    ----------
    path : path-like
        The table (a tensor bundle's ``.index``).

    Returns
    -------
    list of tuple of (bytes, bytes)
        Keys and values, in key order.
    """
    path = Path(path)
    buf = path.read_bytes()
    if len(buf) < FOOTER_SIZE or int.from_bytes(buf[-8:], "little") != TABLE_MAGIC:
        raise InputError(
            path,
            "not a TensorFlow tensor-bundle index (missing table magic number at the end; "
            "the file is truncated or of another format)",
        )
    footer = buf[-FOOTER_SIZE:]
    try:
        _, pos = read_varint(footer, 0)  # metaindex handle: unused by tensor bundles
        _, pos = read_varint(footer, pos)
        index_offset, pos = read_varint(footer, pos)
        index_size, pos = read_varint(footer, pos)
    except ValueError as exc:
        raise InputError(path, f"table footer is malformed ({exc})") from None
    index = _block_entries(
        _read_block(buf, index_offset, index_size, path, "index block"), path, "index block"
    )
    entries: list[tuple[bytes, bytes]] = []
    for number, (_, handle) in enumerate(index):
        try:
            offset, pos = read_varint(handle, 0)
            size, _ = read_varint(handle, pos)
        except ValueError as exc:
            raise InputError(path, f"index entry {number} is malformed ({exc})") from None
        what = f"data block {number}"
        entries.extend(_block_entries(_read_block(buf, offset, size, path, what), path, what))
    return entries


# ----------------------------------------------------------------------------------------------------
# Tensor bundle


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies in a bundle: ``BundleEntryProto`` decoded."""

    name: str
    dtype: int  # TensorFlow DataType enum
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # unmasked


def _parse_entry(name: str, value: bytes) -> TensorEntry:
    f = parse_proto(value)
    if 7 in f:
        raise ValueError("partitioned (sliced) variables are not supported")
    shape_proto = parse_proto(_first(f, 2, b""))
    dims = tuple(int(_first(parse_proto(d), 1, 0)) for d in shape_proto.get(2, []))
    return TensorEntry(
        name=name,
        dtype=int(_first(f, 1, 0)),
        shape=dims,
        shard=int(_first(f, 3, 0)),
        offset=int(_first(f, 4, 0)),
        size=int(_first(f, 5, 0)),
        crc32c=unmask_crc(int(_first(f, 6, 0))),
    )


@dataclass
class TrackableNode:
    """One object of a checkpoint's object graph: its children by local name and its variables' keys."""

    children: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)  # attribute name → checkpoint key
    slot_variables: int = 0


class TensorBundle:
    """A TensorFlow tensor bundle (``PREFIX.index`` + ``PREFIX.data-*``), read without TensorFlow.

    prefix: path without the ``.index`` suffix, e.g. ``savedmodel/variables/variables``.
    """

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        self.index_path = self.prefix.with_name(self.prefix.name + ".index")
        if not self.index_path.is_file():
            raise InputError(self.index_path, "tensor-bundle index not found")
        table = read_table(self.index_path)
        if not table or table[0][0] != b"":
            raise InputError(self.index_path, "tensor-bundle header (the empty key) is missing")
        try:
            header = parse_proto(table[0][1])
        except ValueError as exc:
            raise InputError(self.index_path, f"tensor-bundle header is malformed ({exc})") from None
        self.num_shards = int(_first(header, 1, 1))
        if int(_first(header, 2, 0)) != 0:
            raise InputError(self.index_path, "big-endian tensor bundles are not supported")
        self.entries: dict[str, TensorEntry] = {}
        for key, value in table[1:]:
            name = key.decode("utf-8", "replace")
            try:
                self.entries[name] = _parse_entry(name, value)
            except ValueError as exc:
                raise InputError(self.index_path, f"entry {name!r} is malformed ({exc})") from None
        for entry in self.entries.values():
            if entry.dtype not in _DTYPES and entry.dtype != DT_STRING:
                raise InputError(
                    self.index_path, f"tensor {entry.name!r} has unsupported dtype enum {entry.dtype}"
                )
            if entry.shard >= self.num_shards:
                raise InputError(
                    self.index_path,
                    f"tensor {entry.name!r} is in shard {entry.shard} but the bundle has {self.num_shards}",
                )

    def shard_path(self, shard: int) -> Path:
        """The path of data shard ``shard`` (0-based)."""
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}")

    def data_files(self) -> list[Path]:
        """The paths of every data shard."""
        return [self.shard_path(s) for s in range(self.num_shards)]

    def _shard_bytes(self, shard: int, needed: int) -> np.ndarray:
        path = self.shard_path(shard)
        if not path.is_file():
            raise InputError(path, "tensor-bundle data shard not found")
        size = path.stat().st_size
        if size < needed:
            raise InputError(
                path, f"data shard holds {size} bytes but the index needs {needed}: the file is truncated"
            )
        return np.fromfile(path, dtype=np.uint8)

    def read(self, names: list[str] | None = None, verify: bool = True) -> dict[str, np.ndarray]:
        """Read numeric tensors (all of them by default) as numpy arrays, checking CRC32C if ``verify``.

        String tensors are read with :meth:`read_string`.
        """
        if names is None:
            names = [n for n, e in self.entries.items() if e.dtype != DT_STRING]
        missing = [n for n in names if n not in self.entries]
        if missing:
            raise InputError(self.index_path, f"tensors not in the bundle: {missing[:5]}")
        out: dict[str, np.ndarray] = {}
        by_shard: dict[int, list[TensorEntry]] = {}
        for name in names:
            entry = self.entries[name]
            if entry.dtype == DT_STRING:
                raise InputError(self.index_path, f"tensor {name!r} is a string tensor")
            by_shard.setdefault(entry.shard, []).append(entry)
        for shard, entries in by_shard.items():
            data = self._shard_bytes(shard, max(e.offset + e.size for e in entries))
            if verify:
                crcs = crc32c_segments(data, [e.offset for e in entries], [e.size for e in entries])
                bad = [e.name for e, c in zip(entries, crcs, strict=True) if int(c) != e.crc32c]
                if bad:
                    raise InputError(
                        self.shard_path(shard),
                        f"CRC32C mismatch for {len(bad)} tensor(s), e.g. "
                        f"{bad[0]!r}: the data file is corrupt",
                    )
            for e in entries:
                out[e.name] = self._decode(e, data[e.offset : e.offset + e.size])
        return out

    def _decode(self, e: TensorEntry, raw: np.ndarray) -> np.ndarray:
        dtype = _DTYPES[e.dtype]
        count = int(np.prod(e.shape, dtype=np.int64))
        if count * dtype.itemsize != e.size:
            raise InputError(
                self.index_path, f"tensor {e.name!r}: {e.size} bytes do not hold shape {e.shape} of {dtype}"
            )
        arr = raw.view(dtype).reshape(e.shape)
        if e.dtype == DT_BFLOAT16:  # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.copy()

    def read_string(self, name: str) -> list[bytes]:
        """A string tensor's elements.

        On-disk layout: varint64 lengths, a uint32 checksum of them, then the bytes; the entry's CRC32C
        covers each length as a little-endian uint32 (uint64 beyond 4 GiB; not its varint bytes), the
        checksum and the bytes.
        """
        entry = self.entries.get(name)
        if entry is None or entry.dtype != DT_STRING:
            raise InputError(self.index_path, f"string tensor {name!r} not in the bundle")
        path = self.shard_path(entry.shard)
        raw = self._shard_bytes(entry.shard, entry.offset + entry.size)[
            entry.offset : entry.offset + entry.size
        ]
        raw = raw.tobytes()
        count = int(np.prod(entry.shape, dtype=np.int64))
        lengths, pos = [], 0
        try:
            for _ in range(count):
                n, pos = read_varint(raw, pos)
                lengths.append(n)
        except ValueError as exc:
            raise InputError(path, f"string tensor {name!r} is malformed ({exc})") from None
        if pos + 4 + sum(lengths) != len(raw):
            raise InputError(path, f"string tensor {name!r}: lengths do not add up to its {len(raw)} bytes")
        covered = b"".join(n.to_bytes(4 if n <= 0xFFFFFFFF else 8, "little") for n in lengths) + raw[pos:]
        if crc32c(covered) != entry.crc32c:
            raise InputError(path, f"CRC32C mismatch for {name!r}: the data file is corrupt")
        pos += 4
        out = []
        for n in lengths:
            out.append(raw[pos : pos + n])
            pos += n
        return out

    def object_graph(self) -> list[TrackableNode]:
        """The ``TrackableObjectGraph``: node 0 is the root object (the Keras model)."""
        strings = self.read_string(OBJECT_GRAPH_KEY)
        if len(strings) != 1:
            raise InputError(self.index_path, f"{OBJECT_GRAPH_KEY} holds {len(strings)} strings, expected 1")
        (raw,) = strings
        nodes = []
        try:
            for node_bytes in parse_proto(raw).get(1, []):
                f = parse_proto(node_bytes)
                node = TrackableNode()
                for child in f.get(1, []):
                    c = parse_proto(child)
                    node.children[_text(c, 2)] = int(_first(c, 1, 0))
                for attr in f.get(2, []):
                    a = parse_proto(attr)
                    node.attributes[_text(a, 1)] = _text(a, 3)
                node.slot_variables = len(f.get(3, []))
                nodes.append(node)
        except ValueError as exc:
            raise InputError(self.shard_path(0), f"object graph is malformed ({exc})") from None
        dangling = [c for node in nodes for c in node.children.values() if c >= len(nodes)]
        if dangling:  # callers index the list with these ids
            raise InputError(
                self.shard_path(0), f"object graph is malformed (child node {dangling[0]} of {len(nodes)})"
            )
        return nodes


# ----------------------------------------------------------------------------------------------------
# SavedModel


@dataclass(frozen=True)
class KerasObject:
    """One entry of ``keras_metadata.pb``: a saved Keras object and its metadata JSON."""

    node_id: int
    path: str  # e.g. "root.layer_with_weights-3"
    identifier: str  # e.g. "_tf_keras_layer"
    metadata: dict


def read_keras_metadata(path: str | Path) -> list[KerasObject]:
    """Parse ``keras_metadata.pb`` (a ``SavedMetadata`` proto of ``SavedObject`` entries).

    Parameters
    ----------
    path : path-like
        The ``keras_metadata.pb`` file of a SavedModel.

    Returns
    -------
    list of KerasObject
        One entry per saved object: its node path, identifier and JSON metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "keras_metadata.pb not found: not a Keras SavedModel")
    objects = []
    try:
        for node_bytes in parse_proto(path.read_bytes()).get(1, []):
            f = parse_proto(node_bytes)
            meta = _text(f, 5)
            objects.append(
                KerasObject(int(_first(f, 2, 0)), _text(f, 3), _text(f, 4), json.loads(meta) if meta else {})
            )
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            path, f"malformed Keras metadata ({exc}): the file is truncated or corrupt"
        ) from None
    return objects


def is_savedmodel(path: str | Path) -> bool:
    """Whether ``path`` is a TensorFlow SavedModel directory.

    Parameters
    ----------
    path : str or Path
        The path to check.

    Returns
    -------
    bool
        True when it holds ``saved_model.pb`` and ``variables/variables.index``.
    """
    path = Path(path)
    return (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file()


def savedmodel_bundle(path: str | Path) -> TensorBundle:
    """The variables bundle of a SavedModel directory.

    Parameters
    ----------
    path : path-like
        The SavedModel directory (its ``variables/variables.index`` and data shards are read).

    Returns
    -------
    TensorBundle
        The bundle's tensors by name.
    """
    path = Path(path)
    if not (path / "variables" / "variables.index").is_file():
        raise InputError(path, "not a SavedModel directory (variables/variables.index is missing)")
    return TensorBundle(path / "variables" / "variables")


__all__ = [
    "KerasObject",
    "TensorBundle",
    "TensorEntry",
    "TrackableNode",
    "crc32c",
    "crc32c_segments",
    "is_savedmodel",
    "parse_proto",
    "read_keras_metadata",
    "read_table",
    "savedmodel_bundle",
]
