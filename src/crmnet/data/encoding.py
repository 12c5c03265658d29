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
* **Context.** A model may see its sequence in a constant context: a fixed ``prefix``, or a ``flank`` that
  the padding is taken from instead of N, after ``trim_start`` leading characters are dropped (LegNet's
  released models: the 17-nt adapter position is replaced by upstream plasmid).

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

#: what the bad-character error tells the user to do (``invalid="N"`` in Python)
INVALID_HINT = "pass --invalid N to map them to N"


def invalid_character_error(source, char: str, position: int, line: int | None) -> InputError:
    """The one error for a character outside ACGTN.

    Names it, its 1-based ``position`` in the sequence and the ``--invalid N`` flag that maps such characters
    to N.
    """
    return InputError(source, f"invalid character {char!r} at position {position} of the sequence (allowed: A, C, "
                              f"G, T, N in either case; {INVALID_HINT})", line=line)


def without_invalid_hint(exc: InputError) -> InputError:
    """``exc`` without the ``--invalid N`` hint, for a command that has no such option."""
    return InputError(exc.source, exc.problem.replace(f"; {INVALID_HINT}", ""), line=exc.line)


@dataclass(frozen=True)
class Encoding:
    """How a model wants its sequences laid out and one-hot encoded.

    length: positions per sequence, ``prefix`` included.
    pad: where ``N`` padding goes when a sequence is shorter (``"end"`` or ``"start"``).
    truncate: which end is cut when a sequence is longer (``"end"`` keeps the first bases).
    channels: one-hot channel order, a permutation of ``ACGT`` with or without ``N``.
    unknown_fill: value of each base channel for an ``N`` when ``channels`` has no ``N`` channel.
    prefix: constant sequence placed before every sequence; the sequence itself is fitted to
        ``length - len(prefix)``.
    trim_start: characters dropped from the start of every sequence before it is laid out, whatever
        they are (they are still checked for invalid characters).
    flank: constant sequence the input continues on its padded side: padding takes the flank's bases
        next to the sequence (its last bases when padding at the start, its first at the end) and N
        only beyond the flank. LegNet: ``flank`` = 150 nt of plasmid ending in the left adapter,
        ``trim_start`` = 17, so every input is the last 150 nt of plasmid + sequence[17:].
    """

    length: int = 112
    pad: Side = "end"
    truncate: Side = "end"
    channels: str = "NACGT"
    unknown_fill: float = 0.0
    prefix: str = ""
    trim_start: int = 0
    flank: str = ""

    def __post_init__(self) -> None:
        if self.length <= len(self.prefix):
            raise ValueError(f"encoding length {self.length} must exceed the prefix length {len(self.prefix)}")
        for name in ("pad", "truncate"):
            if getattr(self, name) not in ("end", "start"):
                raise ValueError(f"encoding {name} must be 'end' or 'start', not {getattr(self, name)!r}")
        if sorted(self.channels) not in (sorted("ACGT"), sorted("ACGTN")):
            raise ValueError(f"encoding channels must be a permutation of ACGT or ACGTN, not {self.channels!r}")
        for name in ("prefix", "flank"):
            text = getattr(self, name)
            if text and (_LUT[np.frombuffer(text.encode(), np.uint8)] == _INVALID).any():
                raise ValueError(f"encoding {name} has characters outside ACGTN: {text!r}")
        if not isinstance(self.trim_start, int) or self.trim_start < 0:
            raise ValueError(f"encoding trim_start must be a non-negative integer, not {self.trim_start!r}")

    @property
    def n_channels(self) -> int:
        """Input channels (one per letter of ``channels``)."""
        return len(self.channels)

    @property
    def body_length(self) -> int:
        """Positions left for the sequence itself once the prefix is placed."""
        return self.length - len(self.prefix)

    def to_dict(self) -> dict:
        """The fields as a dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Encoding:
        """The encoding from :meth:`to_dict`'s dict; unknown keys are a ValueError."""
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


def _codes_of(text: str) -> np.ndarray:
    """(len(text),) uint8 codes of a constant ACGTN string (a prefix or flank, validated by Encoding)."""
    return _LUT[np.frombuffer(text.encode(), np.uint8)]


def _invalid_counts(data: np.ndarray, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(k,) number of invalid bytes in each span ``data[offsets[i] : offsets[i] + counts[i]]`` (counts > 0)."""
    first = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    where = np.repeat(offsets - first, counts) + np.arange(int(counts.sum()))
    return np.add.reduceat((_LUT[data[where]] == _INVALID).astype(np.int64), first)


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
    Returns codes (n, enc.length) uint8 laid out as ``enc`` says (prefix and flank included) and the
    number of characters mapped to N under ``invalid="N"``. The whole sequence is checked, truncated and
    trimmed parts included.
    """
    if invalid not in ("error", "N"):
        raise ValueError(f"invalid policy must be 'error' or 'N', not {invalid!r}")
    data = np.ascontiguousarray(data, np.uint8)
    orig_starts = np.asarray(starts, dtype=np.int64)
    orig_lengths = np.asarray(lengths, dtype=np.int64)
    trimmed = np.minimum(orig_lengths, enc.trim_start)
    starts, lengths = orig_starts + trimmed, orig_lengths - trimmed
    n = len(starts)
    body = enc.body_length
    keep = np.minimum(lengths, body)
    src = starts if enc.truncate == "end" else starts + lengths - keep
    dst = np.zeros_like(keep) if enc.pad == "end" else body - keep
    # Translate the buffer once, framed by ``body`` N codes on each side, then take every row as one
    # fixed-width window (a strided view: a row copy per sequence instead of a gather per base); the
    # window positions outside the sequence's span are set to N afterwards.
    frame = b"N" * body
    padded = np.frombuffer(b"".join((frame, memoryview(data), frame)).translate(_LUT_BYTES), dtype=np.uint8)
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
    # Bases cut off by truncation, and those trimmed from the start, are checked too.
    cut = np.flatnonzero(lengths > body)
    if len(cut):
        cut_from = starts[cut] + keep[cut] if enc.truncate == "end" else starts[cut]
        bad_rows[cut] += _invalid_counts(data, cut_from, lengths[cut] - keep[cut])
    cut = np.flatnonzero(trimmed)
    if len(cut):
        bad_rows[cut] += _invalid_counts(data, orig_starts[cut], trimmed[cut])
    if bad_rows.any():
        if invalid == "error":
            row = int(np.flatnonzero(bad_rows)[0])
            span = data[orig_starts[row] : orig_starts[row] + orig_lengths[row]]
            pos_bad = int(np.flatnonzero(_LUT[span] == _INVALID)[0])
            raise invalid_character_error(source, chr(span[pos_bad]), pos_bad + 1,
                                          None if lines is None else int(lines[row]))
        np.putmask(codes, bad, CODE_N)
    np.copyto(codes[:, edge], CODE_N, where=outside)
    if enc.flank:
        _place_flank(codes[:, edge], outside, pos[edge], keep if enc.pad == "end" else dst, enc)
    if enc.prefix:
        pre = np.broadcast_to(_codes_of(enc.prefix), (n, len(enc.prefix)))
        codes = np.concatenate([pre, codes], axis=1)
    return codes, int(bad_rows.sum())


def _place_flank(block: np.ndarray, outside: np.ndarray, pos: np.ndarray, boundary: np.ndarray, enc: Encoding):
    """Write ``enc.flank`` into the padding of ``block`` (a view of the codes' edge columns), in place.

    outside: (n, w) padding mask; pos: (w,) the columns' positions; boundary: (n,) where each sequence
    ends (padding at the end) or starts (padding at the start). Padding beyond the flank stays N.
    """
    flank = _codes_of(enc.flank)
    if enc.pad == "end":
        idx = pos[None, :] - boundary[:, None]  # the flank continues right after the sequence
    else:
        idx = len(flank) - (boundary[:, None] - pos[None, :])  # the sequence continues the flank
    take = outside & (idx >= 0) & (idx < len(flank))
    block[take] = flank[idx[take]]


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

    Parameters
    ----------
    seqs : sequence of str or bytes
        n DNA sequences (A, C, G, T, N in either case).
    enc : Encoding
        The layout: length, pad and truncate side, prefix, trim, flank.
    invalid : {"error", "N"}
        Another character is an ``InputError`` naming its line, or is stored as N and counted.
    source : str, optional
        The file named in errors.
    first_line : int
        The 1-based line of the first sequence in ``source``.

    Returns
    -------
    codes : ndarray, shape (n, enc.length), uint8
        ``A=0 C=1 G=2 T=3 N=4``, laid out as ``enc`` says.
    mapped : int
        Characters mapped to N (0 unless ``invalid="N"``).
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


def onehot(codes, enc: Encoding = CRMNET, channels_last: bool = False):
    """One-hot on the device: codes (B, L) integer tensor → (B, C, L) float32 tensor.

    Parameters
    ----------
    codes : torch.Tensor, shape (B, enc.length), integer
        Codes ``A=0 C=1 G=2 T=3 N=4`` as :func:`encode` lays them out.
    enc : Encoding
        Channel order (``enc.channels``, C of them) and the value N takes in the base channels.
    channels_last : bool
        Return a (B, C, L) view of (B, L, C) memory (one row look-up per position, no copy), which a
        channels-last consumer such as ``FastNarrowCRMnet`` reads without transposing.

    Returns
    -------
    torch.Tensor, shape (B, C, enc.length), float32
        On the device of ``codes``; contiguous unless ``channels_last``.
    """
    import torch

    batch, length = codes.shape
    index = codes.reshape(-1).long()
    if channels_last:
        table = torch.as_tensor(onehot_table(enc), device=codes.device)
        return table.index_select(0, index).view(batch, length, -1).transpose(1, 2)
    # index_select on the (C, 5) transposed table, then one (C, B, L) -> (B, C, L) copy: several times
    # faster on a CPU than advanced indexing into (B, L, C) followed by a transpose.
    table = torch.as_tensor(onehot_table(enc).T.copy(), device=codes.device)
    return table.index_select(1, index).view(-1, batch, length).transpose(0, 1).contiguous()


def _layout(enc: Encoding) -> tuple:
    return enc.length, enc.pad, enc.truncate, enc.prefix, enc.trim_start, enc.flank


def relayout(codes, lengths, src: Encoding, dst: Encoding):
    """Re-lay codes stored under ``src`` (true ``lengths`` kept) as ``dst`` wants, on the device.

    codes: (B, src.length) uint8 tensor, padded with N as :func:`encode` writes it (``src`` has no
    ``trim_start`` or ``flank``: stores hold the sequences themselves); lengths: (B,) integer tensor of the
    original sequence lengths. Returns (B, dst.length) uint8. Exact whenever the stored block holds the
    bases ``dst`` keeps, i.e. for every sequence no longer than ``src.body_length``; bases a store truncated
    cannot come back.
    """
    import torch

    if src.trim_start or src.flank:
        raise ValueError("relayout reads codes stored without trim_start or flank")
    if _layout(src) == _layout(dst):
        return codes
    width = src.body_length
    body = codes[:, len(src.prefix) :]
    lengths = lengths.to(torch.long)
    stored = torch.clamp(lengths, max=width)
    stored_at = torch.zeros_like(stored) if src.pad == "end" else width - stored
    # dst.trim_start drops the sequence's first bases: those of them the block still holds.
    lost = lengths - stored if src.truncate == "start" else torch.zeros_like(stored)
    trimmed = torch.minimum(torch.clamp(dst.trim_start - lost, min=0), stored)
    stored_at, stored = stored_at + trimmed, stored - trimmed
    out_len = dst.body_length
    keep = torch.clamp(stored, max=out_len)
    take_from = stored_at if dst.truncate == "end" else stored_at + stored - keep
    put_at = torch.zeros_like(keep) if dst.pad == "end" else out_len - keep
    # Every output row is one window of the stored block framed by N on both sides; the positions
    # outside the kept bases are padding (N, or the flank's bases next to the sequence).
    frame = torch.full((len(codes), out_len), CODE_N, dtype=codes.dtype, device=codes.device)
    framed = torch.cat([frame, body, frame], dim=1)
    pos = torch.arange(out_len, device=codes.device)
    out = torch.gather(framed, 1, (take_from - put_at + out_len)[:, None] + pos)
    inside = (pos >= put_at[:, None]) & (pos < (put_at + keep)[:, None])
    pad = torch.full_like(out, CODE_N)
    if dst.flank:
        flank = torch.as_tensor(_codes_of(dst.flank), device=codes.device)
        if dst.pad == "end":
            idx = pos - (put_at + keep)[:, None]
        else:
            idx = len(flank) - (put_at[:, None] - pos)
        on_flank = (idx >= 0) & (idx < len(flank))
        pad = torch.where(on_flank, flank[idx.clamp(0, len(flank) - 1)], pad)
    out = torch.where(inside, out, pad)
    if dst.prefix:
        pre = torch.as_tensor(_codes_of(dst.prefix), device=codes.device)
        out = torch.cat([pre.expand(len(out), -1), out], dim=1)
    return out


def revcomp_onehot(x, enc: Encoding = CRMNET):
    """Reverse complement of a one-hot batch x: (B, C, L) → (B, C, L) (channels swapped, length flipped)."""
    perm = [enc.channels.index({"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}[c]) for c in enc.channels]
    return x[:, perm].flip(-1)
