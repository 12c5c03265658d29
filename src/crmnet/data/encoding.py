"""The encoding contract: how DNA text becomes integer codes, and codes become a model's input.

* **Codes.** Every sequence is stored as ``uint8`` codes ``A=0 C=1 G=2 T=3 N=4``. Lower case is accepted.
  Any other character is an error naming the file and line, unless the caller asks for the explicit
  ``invalid="N"`` policy, which maps it to ``N`` and reports how many characters were mapped.
* **Layout.** An :class:`Encoding` fixes the length and which end is padded (with ``N``) or truncated.
  CRMnet truncates and pads at the end to 112 (``pad_sequences(padding='post', truncating='post')``);
  Vaishnav et al. keep the *last* 110 nt and pad on the left.
* **Channels.** One-hot happens per batch, on the device, through a small lookup table. The channel
  order belongs to the model: the authors' CRMnet weights need ``[N, A, C, G, T]`` (Keras' StringLookup
  puts the out-of-vocabulary slot first); models without an ``N`` channel give an ``N`` the value
  ``unknown_fill`` in every base channel (0 for Vaishnav's models, 0.25 for LegNet).

Layout conversion (:func:`relayout`) lets one store, written in one layout with the true lengths kept,
feed models that want another layout, on the device and without a Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from crmnet.errors import InputError

ALPHABET = "ACGTN"
CODE_N = 4
_INVALID = 255

_LUT = np.full(256, _INVALID, dtype=np.uint8)
for _code, _base in enumerate(ALPHABET):
    _LUT[ord(_base)] = _code
    _LUT[ord(_base.lower())] = _code
_LUT_BYTES = _LUT.tobytes()  # the same table for bytes.translate, several times faster than a numpy gather

# Code of the complementary base, for reverse complements done on codes.
COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)

Side = Literal["end", "start"]
InvalidPolicy = Literal["error", "N"]


@dataclass(frozen=True)
class Encoding:
    """How a model wants its sequences laid out and one-hot encoded.

    length: positions per sequence, ``prefix`` included.
    pad: where ``N`` padding goes when a sequence is shorter (``"end"`` or ``"start"``).
    truncate: which end is cut when a sequence is longer (``"end"`` keeps the first bases).
    channels: one-hot channel order, a permutation of ``ACGT`` with or without ``N``.
    unknown_fill: value of each base channel for an ``N`` when ``channels`` has no ``N`` channel.
    prefix: constant sequence placed before every sequence (LegNet's upstream plasmid); the sequence
        itself is fitted to ``length - len(prefix)``.
    """

    length: int = 112
    pad: Side = "end"
    truncate: Side = "end"
    channels: str = "NACGT"
    unknown_fill: float = 0.0
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.length <= len(self.prefix):
            raise ValueError(f"encoding length {self.length} must exceed the prefix length {len(self.prefix)}")
        for name in ("pad", "truncate"):
            if getattr(self, name) not in ("end", "start"):
                raise ValueError(f"encoding {name} must be 'end' or 'start', not {getattr(self, name)!r}")
        if sorted(self.channels) not in (sorted("ACGT"), sorted("ACGTN")):
            raise ValueError(f"encoding channels must be a permutation of ACGT or ACGTN, not {self.channels!r}")
        if self.prefix and (_LUT[np.frombuffer(self.prefix.encode(), np.uint8)] == _INVALID).any():
            raise ValueError(f"encoding prefix has characters outside ACGTN: {self.prefix!r}")

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def body_length(self) -> int:
        """Positions left for the sequence itself once the prefix is placed."""
        return self.length - len(self.prefix)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Encoding:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown encoding keys: {sorted(unknown)}")
        return cls(**d)


CRMNET = Encoding()
VAISHNAV = Encoding(length=110, pad="start", truncate="start", channels="ACGT", unknown_fill=0.0)


def onehot_table(enc: Encoding) -> np.ndarray:
    """(5, C) float32: row ``k`` is the one-hot vector of code ``k`` under ``enc``."""
    table = np.zeros((5, enc.n_channels), dtype=np.float32)
    for code, base in enumerate(ALPHABET):
        if base in enc.channels:
            table[code, enc.channels.index(base)] = 1.0
        else:  # an N without an N channel
            table[code, [enc.channels.index(b) for b in "ACGT"]] = enc.unknown_fill
    return table


def encode_spans(
    data: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    enc: Encoding = CRMNET,
    *,
    invalid: InvalidPolicy = "error",
    source: str | None = None,
    lines: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Encode sequences that lie as byte spans inside one buffer (the fast path of every reader).

    data: (nbytes,) uint8 buffer holding the text; starts, lengths: (n,) int64 spans of the sequences.
    lines: (n,) 1-based line numbers, used only to name the line of an invalid character.
    Returns codes (n, enc.length) uint8 laid out as ``enc`` says (prefix included) and the number of
    characters mapped to N under ``invalid="N"``. The whole sequence is checked, truncated part included.
    """
    if invalid not in ("error", "N"):
        raise ValueError(f"invalid policy must be 'error' or 'N', not {invalid!r}")
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(starts)
    body = enc.body_length
    keep = np.minimum(lengths, body)
    src = starts if enc.truncate == "end" else starts + lengths - keep
    dst = np.zeros_like(keep) if enc.pad == "end" else body - keep
    # Translate the buffer once, framed by ``body`` N codes on each side, then take every row as one
    # fixed-width window (a strided view: a row copy per sequence instead of a gather per base); the
    # window positions outside the sequence's span are set to N afterwards.
    frame = b"N" * body
    padded = np.frombuffer(b"".join((frame, memoryview(np.ascontiguousarray(data, np.uint8)), frame))
                           .translate(_LUT_BYTES), dtype=np.uint8)
    windows = np.lib.stride_tricks.as_strided(padded, shape=(len(padded) - body + 1, body), strides=(1, 1))
    codes = windows[src - dst + body]
    # Only the columns some row pads can be outside a sequence: padding at the end starts at the
    # shortest kept length at the earliest, padding at the start ends at ``body - shortest``.
    shortest = int(np.min(keep, initial=body))
    pos = np.arange(body, dtype=np.int64)
    if enc.pad == "end":
        edge = slice(shortest, body)
        outside = pos[edge] >= keep[:, None]
    else:
        edge = slice(0, body - shortest)
        outside = pos[edge] < dst[:, None]
    bad = codes == _INVALID
    bad[:, edge] &= ~outside  # invalid and inside the sequence
    bad_rows = np.count_nonzero(bad, axis=1).astype(np.int64) if bad.any() else np.zeros(n, dtype=np.int64)
    # Bases cut off by truncation are checked too.
    cut = np.flatnonzero(lengths > body)
    if len(cut):
        cut_len = lengths[cut] - keep[cut]
        cut_from = starts[cut] + keep[cut] if enc.truncate == "end" else starts[cut]
        first = np.zeros(len(cut), dtype=np.int64)
        np.cumsum(cut_len[:-1], out=first[1:])
        where = np.repeat(cut_from - first, cut_len) + np.arange(int(cut_len.sum()))
        bad_cut = np.add.reduceat((_LUT[data[where]] == _INVALID).astype(np.int64), first)
        bad_rows[cut] += bad_cut
    if bad_rows.any():
        if invalid == "error":
            row = int(np.flatnonzero(bad_rows)[0])
            span = data[starts[row] : starts[row] + lengths[row]]
            pos_bad = int(np.flatnonzero(_LUT[span] == _INVALID)[0])
            raise InputError(
                source,
                f"invalid character {chr(span[pos_bad])!r} at position {pos_bad + 1} of the sequence (allowed: "
                "A, C, G, T, N in either case; use the invalid-to-N option to map other characters to N)",
                line=None if lines is None else int(lines[row]),
            )
        np.putmask(codes, bad, CODE_N)
    np.copyto(codes[:, edge], CODE_N, where=outside)
    mapped = int(bad_rows.sum())
    if enc.prefix:
        pre = np.broadcast_to(_LUT[np.frombuffer(enc.prefix.encode(), np.uint8)], (n, len(enc.prefix)))
        codes = np.concatenate([pre, codes], axis=1)
    return codes, mapped


def invalid_positions(data: bytes) -> np.ndarray:
    """Offsets of the bytes of ``data`` that are not A, C, G, T or N (either case), ascending."""
    return np.flatnonzero(np.frombuffer(bytes(data).translate(_LUT_BYTES), dtype=np.uint8) == _INVALID)


def encode(
    seqs: Sequence[str] | Sequence[bytes],
    enc: Encoding = CRMNET,
    *,
    invalid: InvalidPolicy = "error",
    source: str | None = None,
    first_line: int = 1,
) -> tuple[np.ndarray, int]:
    """Encode a list of sequences; sequence ``i`` is reported as line ``first_line + i`` on error.

    Returns (codes (n, enc.length) uint8, number of characters mapped to N).
    """
    # One byte per character, so error positions match the text; latin-1 keeps the offending character
    # itself in the message (only characters beyond U+00FF become '?').
    raw = [s.encode("latin-1", "replace") if isinstance(s, str) else bytes(s) for s in seqs]
    lengths = np.fromiter((len(s) for s in raw), dtype=np.int64, count=len(raw))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(raw) else np.zeros(0, np.int64)
    data = np.frombuffer(b"".join(raw), dtype=np.uint8)
    lines = np.arange(first_line, first_line + len(raw))
    return encode_spans(data, starts, lengths, enc, invalid=invalid, source=source, lines=lines)


def decode(codes: np.ndarray) -> list[str]:
    """(n, L) codes → strings (padding shows as N)."""
    letters = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    arr = letters[np.asarray(codes, dtype=np.intp)]
    return [row.tobytes().decode() for row in np.atleast_2d(arr)]


def onehot(codes, enc: Encoding = CRMNET):
    """One-hot on the device: codes (B, L) integer tensor → (B, C, L) float32 tensor."""
    import torch

    # index_select on the (C, 5) transposed table, then one (C, B, L) -> (B, C, L) copy: several times
    # faster on a CPU than advanced indexing into (B, L, C) followed by a transpose.
    table = torch.as_tensor(onehot_table(enc).T.copy(), device=codes.device)
    batch, length = codes.shape
    return table.index_select(1, codes.reshape(-1).long()).view(-1, batch, length).transpose(0, 1).contiguous()


def relayout(codes, lengths, src: Encoding, dst: Encoding):
    """Re-lay codes stored under ``src`` (true ``lengths`` kept) as ``dst`` wants, on the device.

    codes: (B, src.length) uint8 tensor, padded with N as :func:`encode` writes it; lengths: (B,) integer
    tensor of the original sequence lengths. Returns (B, dst.length) uint8. Exact whenever the stored block holds the bases ``dst`` keeps, i.e.
    for every sequence no longer than ``src.body_length``; bases a store truncated cannot come back.
    """
    import torch

    same_layout = (src.length, src.pad, src.truncate, src.prefix) == (dst.length, dst.pad, dst.truncate, dst.prefix)
    if same_layout:
        return codes
    width = src.body_length
    body = codes[:, len(src.prefix) :]
    lengths = lengths.to(torch.long)
    stored = torch.clamp(lengths, max=width)
    stored_at = torch.zeros_like(stored) if src.pad == "end" else width - stored
    out_len = dst.body_length
    keep = torch.clamp(stored, max=out_len)
    take_from = stored_at if dst.truncate == "end" else stored_at + stored - keep
    put_at = torch.zeros_like(keep) if dst.pad == "end" else out_len - keep
    # Every output row is one window of the stored block framed by N on both sides: the block is N
    # wherever it holds no base, so positions outside the kept bases read N without a mask.
    frame = torch.full((len(codes), out_len), CODE_N, dtype=codes.dtype, device=codes.device)
    framed = torch.cat([frame, body, frame], dim=1)
    idx = (take_from - put_at + out_len)[:, None] + torch.arange(out_len, device=codes.device)
    out = torch.gather(framed, 1, idx)
    if dst.prefix:
        pre = torch.as_tensor(_LUT[np.frombuffer(dst.prefix.encode(), np.uint8)], device=codes.device)
        out = torch.cat([pre.expand(len(out), -1), out], dim=1)
    return out


def revcomp_onehot(x, enc: Encoding = CRMNET):
    """Reverse complement of a one-hot batch x: (B, C, L) → (B, C, L) (channels swapped, length flipped)."""
    perm = [enc.channels.index({"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}[c]) for c in enc.channels]
    return x[:, perm].flip(-1)
