"""Design constraints: what a promoter must satisfy before a lab can order and clone it.

One implementation, used by every design command (``crmnet evolve`` in all modes, ``crmnet design``, the
web page's Design tab and the Python API). :class:`ConstraintConfig` holds the settings,
:class:`Constraints` checks batches of sequence-space codes (``(B, W)`` uint8 ``A0 C1 G2 T3 N4``, see
:mod:`crmnet.design.oracle`), each sequence with its *window* (the positions that may change, by default
the 80-nt variable region) and, where there is one, the sequence it started from.

The checks (each is on only when set):

* ``protect``: 1-based inclusive ranges of the full sequence that keep the start's bases; proposals never
  touch them (:meth:`Constraints.mutable`) and the check compares with the start.
* ``gc``: ``(lo, hi)``, the G+C fraction of the window, inclusive.
* ``forbid``: sequences (IUPAC codes allowed) that may occur on neither strand in any stretch that
  overlaps the window. A site lying wholly in the constant flanks cannot be designed away: it is reported
  by :meth:`Constraints.check_fixed` before a search starts.
* ``max_homopolymer``: the longest run of one base that touches the window, counted in full (a run of T
  that continues into the left flank's ``TTTTTTT`` counts those too, as the synthesised DNA has them).
* ``max_edits``: substitutions from the start sequence.
* ``min_distance``: the Hamming distance between any two designs of one library
  (:func:`pick_distinct`); not a property of one sequence.

A proposal that breaks a check is never scored as valid; writers call :meth:`Constraints.require` on what
they write.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmnet.config import Config
from crmnet.errors import InputError

# The IUPAC nucleotide codes → the bases (codes 0-3) each one matches.
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT",
         "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
_COMPLEMENT = str.maketrans("ACGTURYSWKMBDHVN", "TGCAAYRSWMKVHDBN")
CHECKS = ("protect", "gc", "forbid", "homopolymer", "edits")


def reverse_complement_iupac(pattern: str) -> str:
    """The reverse complement of an IUPAC pattern (``GGTCTC`` → ``GAGACC``, ``RY`` → ``RY``)."""
    return pattern.upper().translate(_COMPLEMENT)[::-1]


def parse_ranges(text: str | None) -> tuple[tuple[int, int], ...]:
    """``"1-17,40-45,60"`` → ((1, 17), (40, 45), (60, 60)): 1-based inclusive ranges; None or "" → ()."""
    if not text:
        return ()
    out = []
    for part in text.split(","):
        bits = part.strip().split("-")
        try:
            lo, hi = (int(bits[0]), int(bits[-1])) if len(bits) in (1, 2) else (0, 0)
        except ValueError:
            lo = hi = 0
        if lo < 1 or hi < lo:
            raise InputError(None, f"--protect {text!r}: {part.strip()!r} is not START-END with 1 <= START <= END")
        out.append((lo, hi))
    return tuple(out)


def parse_gc(text: str | None) -> tuple[float, float] | None:
    """``"0.35-0.60"`` → (0.35, 0.6); None stays None."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        raise InputError(None, f"--gc {text!r}: expected LO-HI fractions, e.g. 0.35-0.60") from None
    return lo, hi


def parse_forbid(text: str | None) -> tuple[str, ...]:
    """``"GGTCTC,cgtctc"`` → ('GGTCTC', 'CGTCTC'); None or "" → ()."""
    return tuple(p.strip().upper() for p in text.split(",") if p.strip()) if text else ()


@dataclass
class ConstraintConfig(Config):
    """The settings of :class:`Constraints` (see the module docstring); None or empty switches a check off."""

    protect: tuple[tuple[int, int], ...] = ()
    gc: tuple[float, float] | None = None
    forbid: tuple[str, ...] = ()
    max_homopolymer: int | None = None
    max_edits: int | None = None
    min_distance: int = 1

    def __post_init__(self) -> None:
        for lo, hi in self.protect:
            if lo < 1 or hi < lo:
                raise InputError(None, f"--protect {lo}-{hi}: expected 1 <= START <= END (1-based, inclusive)")
        if self.gc is not None and not 0.0 <= self.gc[0] <= self.gc[1] <= 1.0:
            raise InputError(None, f"--gc {self.gc[0]:g}-{self.gc[1]:g}: expected 0 <= LO <= HI <= 1")
        for pattern in self.forbid:
            bad = sorted(set(pattern) - set(IUPAC))
            if not pattern or bad:
                raise InputError(None, f"--forbid {pattern!r}: only IUPAC nucleotide codes are allowed"
                                       + (f" (not {''.join(bad)})" if bad else ""))
        if self.max_homopolymer is not None and self.max_homopolymer < 1:
            raise InputError(None, f"--max-homopolymer {self.max_homopolymer}: must be at least 1")
        if self.max_edits is not None and self.max_edits < 0:
            raise InputError(None, f"--max-edits {self.max_edits}: must be 0 or more")
        if self.min_distance < 0:
            raise InputError(None, f"--min-distance {self.min_distance}: must be 0 or more")

    def active(self) -> list[str]:
        """Names of the checks that are on (of :data:`CHECKS`, plus ``distance`` when ``min_distance`` > 1)."""
        on = {"protect": bool(self.protect), "gc": self.gc is not None, "forbid": bool(self.forbid),
              "homopolymer": self.max_homopolymer is not None, "edits": self.max_edits is not None}
        return [c for c in CHECKS if on[c]] + (["distance"] if self.min_distance > 1 else [])


def _pattern_table(pattern: str) -> np.ndarray:
    """(k, 5) bool: which codes (A C G T N) each position of an IUPAC pattern matches (N never)."""
    table = np.zeros((len(pattern), 5), bool)
    for i, char in enumerate(pattern):
        table[i, ["ACGT".index(b) for b in IUPAC[char]]] = True
    return table


def _in_window(width: int, windows: np.ndarray) -> np.ndarray:
    j = np.arange(width)[None, :]
    return (j >= windows[:, :1]) & (j < windows[:, 1:])


def homopolymer_runs(codes: np.ndarray) -> np.ndarray:
    """(B, W) int: the length of the run of identical bases each position belongs to (0 at N)."""
    codes = np.asarray(codes)
    b, w = codes.shape
    base = codes < 4
    fwd = np.zeros((b, w), np.int64)
    bwd = np.zeros((b, w), np.int64)
    fwd[:, 0] = base[:, 0]
    bwd[:, -1] = base[:, -1]
    for j in range(1, w):
        fwd[:, j] = np.where(base[:, j], np.where(codes[:, j] == codes[:, j - 1], fwd[:, j - 1] + 1, 1), 0)
        k = w - 1 - j
        bwd[:, k] = np.where(base[:, k], np.where(codes[:, k] == codes[:, k + 1], bwd[:, k + 1] + 1, 1), 0)
    return np.where(base, fwd + bwd - 1, 0)


class Constraints:
    """Vectorised checks of a :class:`ConstraintConfig` (see the module docstring).

    Parameters
    ----------
    config : ConstraintConfig or None (no checks)
    """

    def __init__(self, config: ConstraintConfig | None = None):
        self.config = config or ConstraintConfig()
        patterns = {p for f in self.config.forbid for p in (f, reverse_complement_iupac(f))}
        self._tables = [_pattern_table(p) for p in sorted(patterns)]

    def protected(self, width: int) -> np.ndarray:
        """(width,) bool: the protected positions (0-based) of a ``width``-wide batch."""
        mask = np.zeros(width, bool)
        for lo, hi in self.config.protect:
            mask[lo - 1 : hi] = True
        return mask

    def mutable(self, windows: np.ndarray, width: int) -> np.ndarray:
        """(B, width) bool: the positions proposals may change: inside the window and not protected."""
        return _in_window(width, np.asarray(windows)) & ~self.protected(width)[None, :]

    def gc_fraction(self, codes: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(B,) float: the G+C fraction of each window."""
        inside = _in_window(codes.shape[1], windows)
        gc = ((codes == 1) | (codes == 2)) & inside
        return gc.sum(1) / np.maximum(inside.sum(1), 1)

    def longest_run(self, codes: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(B,) int: the longest homopolymer touching each window (counted in full)."""
        return np.where(_in_window(codes.shape[1], windows), homopolymer_runs(codes), 0).max(1, initial=0)

    def forbidden_hits(self, codes: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(B,) int: occurrences of the forbidden patterns (both strands) that overlap each window."""
        b, w = codes.shape
        hits = np.zeros(b, np.int64)
        for table in self._tables:
            k = len(table)
            if k > w:
                continue
            match = np.ones((b, w - k + 1), bool)
            for i in range(k):
                match &= table[i][codes[:, i : w - k + 1 + i]]
            j = np.arange(w - k + 1)[None, :]
            overlaps = (j < windows[:, 1:]) & (j + k > windows[:, :1])
            hits += (match & overlaps).sum(1)
        return hits

    def check(self, codes, windows, start=None) -> dict[str, np.ndarray]:
        """Each active check of :data:`CHECKS` → (B,) bool, True where the sequence passes.

        Parameters
        ----------
        codes : (B, W) uint8 sequence-space codes
        windows : (B, 2) int [start, end) 0-based
        start : (B, W) uint8 or None
            The sequences the designs started from (``protect`` and ``edits`` need it; without it they pass).
        """
        codes, windows = np.asarray(codes), np.asarray(windows)
        cfg, n = self.config, len(codes)
        out = {}
        if cfg.protect:
            keep = self.protected(codes.shape[1])
            out["protect"] = (np.ones(n, bool) if start is None
                              else (codes[:, keep] == np.asarray(start)[:, keep]).all(1))
        if cfg.gc is not None:
            gc = self.gc_fraction(codes, windows)
            # a rounding margin: a window of 80 has GC steps of 1/80, and 0.35 * 80 is not exactly 28
            out["gc"] = (gc >= cfg.gc[0] - 1e-9) & (gc <= cfg.gc[1] + 1e-9)
        if cfg.forbid:
            out["forbid"] = self.forbidden_hits(codes, windows) == 0
        if cfg.max_homopolymer is not None:
            out["homopolymer"] = self.longest_run(codes, windows) <= cfg.max_homopolymer
        if cfg.max_edits is not None:
            out["edits"] = (np.ones(n, bool) if start is None
                            else (codes != np.asarray(start)).sum(1) <= cfg.max_edits)
        return out

    def valid(self, codes, windows, start=None) -> np.ndarray:
        """(B,) bool: passes every active check (``min_distance`` aside)."""
        result = np.ones(len(codes), bool)
        for ok in self.check(codes, windows, start).values():
            result &= ok
        return result

    def require(self, codes, windows, start=None, what: str = "design") -> None:
        """Raise a RuntimeError naming the first sequence and check that fails: the last look before writing."""
        for name, ok in self.check(codes, windows, start).items():
            if not ok.all():
                raise RuntimeError(f"{what} {int(np.flatnonzero(~ok)[0]) + 1} breaks the {name} constraint "
                                   "(a bug: it should never have been proposed)")

    def check_starts(self, codes, windows, source: str | None = None, lines=None) -> None:
        """An :class:`InputError` naming the line of the first start sequence that breaks a check.

        A search only moves between valid sequences, so it must begin at one.
        """
        self.check_fixed(codes, windows)
        for name, ok in self.check(codes, windows, codes).items():
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise InputError(source, f"the start sequence breaks the {name} constraint "
                                         f"({self.describe(name)}); give a start that satisfies it",
                                 line=None if lines is None else int(lines[i]))

    def check_fixed(self, codes, windows) -> None:
        """An :class:`InputError` when nothing can be designed.

        That is: no position may change, or a forbidden site lies wholly in the fixed part of a sequence.
        """
        codes, windows = np.asarray(codes), np.asarray(windows)
        mutable = self.mutable(windows, codes.shape[1])
        if not mutable.any(1).all():
            raise InputError(None, "no position may change: --protect covers the whole window")
        fixed = np.where(mutable, 4, codes).astype(np.uint8)
        full = np.stack([np.zeros(len(codes), np.int64), np.full(len(codes), codes.shape[1])], 1)
        if self._tables and (self.forbidden_hits(fixed, full) > 0).any():
            raise InputError(None, "a --forbid site lies wholly in positions that may not change "
                                   "(flanks or --protect): no design can avoid it")

    def describe(self, name: str) -> str:
        """The setting of one check, as the command line gives it (e.g. ``--gc 0.35-0.6``)."""
        cfg = self.config
        return {"protect": "--protect " + ",".join(f"{lo}-{hi}" for lo, hi in cfg.protect),
                "gc": f"--gc {cfg.gc[0]:g}-{cfg.gc[1]:g}" if cfg.gc else "",
                "forbid": "--forbid " + ",".join(cfg.forbid),
                "homopolymer": f"--max-homopolymer {cfg.max_homopolymer}",
                "edits": f"--max-edits {cfg.max_edits}",
                "distance": f"--min-distance {cfg.min_distance}"}[name]


def pick_distinct(codes: np.ndarray, order: np.ndarray, k: int, min_distance: int,
                  chosen: np.ndarray | None = None) -> list[int]:
    """Greedily pick up to ``k`` rows of ``codes`` in ``order`` at Hamming distance ≥ ``min_distance``.

    Parameters
    ----------
    codes : (n, W) uint8 candidates
    order : (n,) int — the preference order (best first)
    k : how many to pick
    min_distance : the least Hamming distance between any two picked rows (and any row of ``chosen``)
    chosen : (m, W) uint8 or None — designs already in the library

    Returns
    -------
    list of int
        Picked row indices, in preference order.
    """
    picked: list[int] = []
    kept = [] if chosen is None else list(chosen)
    for i in order:
        if len(picked) == k:
            break
        if all(int((codes[i] != other).sum()) >= min_distance for other in kept):
            picked.append(int(i))
            kept.append(codes[i])
    return picked


def min_pairwise_distance(codes: np.ndarray) -> int | None:
    """The least Hamming distance between two rows of ``codes`` (n, W); None with fewer than two rows."""
    if len(codes) < 2:
        return None
    d = (codes[:, None, :] != codes[None, :, :]).sum(2)
    return int(d[np.triu_indices(len(codes), 1)].min())
