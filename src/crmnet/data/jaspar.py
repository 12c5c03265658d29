"""Yeast (S. cerevisiae) transcription-factor motifs from JASPAR, read offline through pyjaspar.

Contract:

* Motifs come from pyjaspar's bundled SQLite database, collection ``CORE``, species NCBI taxon **4932**
  (S. cerevisiae) only, latest version of each matrix. Several yeast factor names also exist for other
  species in JASPAR (ABF1 and AZF1 for *Arabidopsis*, 3702): those homonyms are never returned.
* The default release is ``JASPAR2024`` (169 yeast CORE matrices). It holds all five motifs the CRMnet paper
  discusses (:data:`PAPER_MOTIFS`: NHP10 MA0344.1, REB1 MA0363.3, ABF1 MA0265.3, AZF1 MA0277.1,
  RAP1 MA0359.3); JASPAR2026 has the same five matrices, older releases older versions of REB1/ABF1/RAP1.
* :class:`Motif` keeps the raw JASPAR counts ``(4, w)`` in ``A, C, G, T`` row order. Its probability matrix
  adds a pseudocount of :data:`PSEUDOCOUNT` sites per column, spread by the background:
  ``pwm = (counts + PSEUDOCOUNT * 0.25) / (column_total + PSEUDOCOUNT)``, so no base has probability 0 and
  log-odds stay finite.
* :func:`write_meme` / :func:`read_meme` write and read MEME text format (version 4, DNA), the input of
  TOMTOM/FIMO (memelite). The file holds frequencies and ``nsites`` (the column total), so counts survive
  a round trip up to the printed precision.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmnet.errors import InputError
from crmnet.fsutil import atomic_file

YEAST_TAXON = "4932"
DEFAULT_RELEASE = "JASPAR2024"
PAPER_MOTIFS = ("NHP10", "REB1", "ABF1", "AZF1", "RAP1")
PSEUDOCOUNT = 1.0
BASES = "ACGT"


@dataclass(frozen=True, eq=False)
class Motif:
    """A position count matrix with its JASPAR identity.

    name: factor name as JASPAR spells it (``"REB1"``); matrix_id: ``"MA0363.3"``.
    counts: (4, w) float64 counts, rows ``A, C, G, T``; stored read-only.
    """

    name: str
    matrix_id: str
    counts: np.ndarray

    def __post_init__(self) -> None:
        counts = np.array(self.counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] == 0:
            raise ValueError(f"motif {self.name}: counts must have shape (4, w), not {counts.shape}")
        if not np.isfinite(counts).all() or (counts < 0).any() or (counts.sum(axis=0) <= 0).any():
            raise ValueError(f"motif {self.name}: counts must be finite, non-negative, each column non-empty")
        counts.setflags(write=False)
        object.__setattr__(self, "counts", counts)

    @property
    def width(self) -> int:
        """``w``, the number of columns."""
        return self.counts.shape[1]

    @property
    def pwm(self) -> np.ndarray:
        """(4, w) probabilities with :data:`PSEUDOCOUNT` sites per column spread uniformly."""
        return (self.counts + PSEUDOCOUNT / 4) / (self.counts.sum(axis=0) + PSEUDOCOUNT)

    @property
    def consensus(self) -> str:
        """The most frequent base of each column (ties: A before C before G before T)."""
        return "".join(BASES[i] for i in self.counts.argmax(axis=0))

    def log_odds(self, background: float | Sequence[float] = 0.25) -> np.ndarray:
        """Log-odds of the probabilities against a background.

        Parameters
        ----------
        background : float or sequence of 4 floats
            One probability for every base, or four (A, C, G, T); all positive.

        Returns
        -------
        ndarray, shape (4, w)
            ``log2(pwm / background)``.
        """
        bg = np.broadcast_to(np.asarray(background, dtype=np.float64), (4,))
        if (bg <= 0).any():
            raise ValueError(f"background probabilities must be positive, not {bg.tolist()}")
        return np.log2(self.pwm / bg[:, None])

    def reverse_complement(self) -> Motif:
        """The motif on the other strand: rows A↔T, C↔G swapped and columns reversed."""
        return Motif(self.name, self.matrix_id, self.counts[::-1, ::-1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Motif):
            return NotImplemented
        return (self.name, self.matrix_id) == (other.name, other.matrix_id) and np.array_equal(
            self.counts, other.counts
        )

    def __hash__(self) -> int:
        return hash((self.name, self.matrix_id, self.counts.tobytes()))

    def __repr__(self) -> str:
        return f"Motif({self.name!r}, {self.matrix_id!r}, width={self.width}, consensus={self.consensus!r})"


def _db(release: str):
    from pyjaspar import jaspardb

    # pyjaspar only prints a message for an unknown release and fails later; check first.
    available = jaspardb().get_releases()
    if release not in available:
        raise InputError("pyjaspar", f"cannot open JASPAR release {release!r}; available: {', '.join(available)}")
    return jaspardb(release=release)


def _to_motif(record) -> Motif:
    counts = np.array([record.counts[b] for b in BASES], dtype=np.float64)
    return Motif(record.name, record.matrix_id, counts)


@functools.lru_cache(maxsize=4)
def _yeast_core(release: str) -> tuple[Motif, ...]:
    records = _db(release).fetch_motifs(collection="CORE", species=[YEAST_TAXON], all_versions=False)
    # The species filter matches any species of a matrix; keep only yeast-only matrices so a
    # multi-species matrix can never stand in for a yeast factor.
    motifs = [_to_motif(r) for r in records if list(r.species) == [YEAST_TAXON]]
    return tuple(sorted(motifs, key=lambda m: m.name.upper()))


def _other_species(release: str, name: str) -> list[str]:
    with warnings.catch_warnings():  # pyjaspar warns when nothing matches; the empty list says it
        warnings.simplefilter("ignore")
        records = _db(release).fetch_motifs_by_name(name)
    return sorted({f"{r.matrix_id} (taxon {','.join(r.species)})" for r in records})


def load_yeast_motifs(names_or_ids: Sequence[str] | None = None, release: str = DEFAULT_RELEASE) -> list[Motif]:
    """S. cerevisiae JASPAR CORE motifs, in the order asked for.

    Parameters
    ----------
    names_or_ids : sequence of str, optional
        Factor names (case-insensitive, ``"reb1"``), full matrix ids (``"MA0363.3"``) or base ids
        (``"MA0363"``, latest version); None: all of them, sorted by name.
    release : str
        JASPAR release of pyjaspar's bundled database.

    Returns
    -------
    list of Motif

    Raises
    ------
    InputError
        For an entry that is not a yeast CORE motif of ``release``, listing close matches (and the other
        species where the name exists).
    """
    motifs = _yeast_core(release)
    if names_or_ids is None:
        return list(motifs)
    if isinstance(names_or_ids, str):
        names_or_ids = [names_or_ids]
    index: dict[str, Motif] = {}
    for m in motifs:
        index[m.name.upper()] = m
        index[m.matrix_id.upper()] = m
        index[m.matrix_id.split(".")[0].upper()] = m
    found = []
    for key in names_or_ids:
        motif = index.get(key.strip().upper())
        if motif is None:
            close = difflib.get_close_matches(key.upper(), [m.name.upper() for m in motifs], n=5, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            elsewhere = _other_species(release, key.strip())
            if elsewhere:
                hint += f"; {key!r} exists in JASPAR only for other species: {', '.join(elsewhere)}"
            raise InputError(
                f"pyjaspar {release}",
                f"{key!r} is not a S. cerevisiae (taxon {YEAST_TAXON}) CORE motif{hint}",
            )
        found.append(motif)
    return found


def write_meme(motifs: Iterable[Motif], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write motifs to a MEME (version 4, DNA) file, atomically.

    Parameters
    ----------
    motifs : iterable of Motif
    path : path-like
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
    """
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for m in motifs:
        totals = m.counts.sum(axis=0)
        freqs = m.counts / totals
        nsites = float(totals.max())
        lines.append(f"MOTIF {m.matrix_id} {m.name}")
        lines.append(f"letter-probability matrix: alength= 4 w= {m.width} nsites= {nsites:g} E= 0")
        lines.extend(" ".join(f"{p:.6f}" for p in col) for col in freqs.T)
        lines.append("")
    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write("\n".join(lines))
    return Path(path)


_MATRIX = re.compile(r"letter-probability matrix:(?P<rest>.*)")


def _field(rest: str, name: str) -> float | None:
    m = re.search(rf"\b{name}=\s*(\S+)", rest)
    return None if m is None else float(m.group(1))


def read_meme(path: str | os.PathLike) -> list[Motif]:
    """Read a MEME text file (DNA alphabet).

    ``MOTIF ID NAME`` gives ``matrix_id=ID`` and ``name=NAME`` (or ``ID`` when there is no name); counts
    are the frequencies × ``nsites`` (default 100).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of Motif

    Raises
    ------
    InputError
        For a malformed file, naming the line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the MEME file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(path, f"not a text file (byte 0x{data[exc.start]:02x} is not UTF-8): a MEME file is text",
                         line=line) from None
    if "\0" in text:
        raise InputError(path, "binary data (a NUL byte): a MEME file is text", line=text.count("\n", 0, text.index("\0")) + 1)
    lines = text.splitlines()
    motifs: list[Motif] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("ALPHABET"):
            alphabet = line.split("=", 1)[-1].strip()
            if alphabet.upper() != "ACGT":
                raise InputError(path, f"only the DNA alphabet ACGT is supported, not {alphabet!r}", line=i + 1)
        if not line.startswith("MOTIF"):
            i += 1
            continue
        fields = line.split()
        if len(fields) < 2:
            raise InputError(path, "MOTIF line without an identifier", line=i + 1)
        matrix_id, name = fields[1], fields[2] if len(fields) > 2 else fields[1]
        j = i + 1
        while j < len(lines) and not _MATRIX.match(lines[j].strip()):
            if lines[j].startswith("MOTIF"):
                break
            j += 1
        header = _MATRIX.match(lines[j].strip()) if j < len(lines) else None
        if header is None:
            raise InputError(path, f"motif {matrix_id} has no 'letter-probability matrix:' line", line=i + 1)
        try:
            width = _field(header.group("rest"), "w")
            nsites = _field(header.group("rest"), "nsites") or 100.0
        except ValueError:
            raise InputError(path, f"motif {matrix_id}: 'w=' and 'nsites=' must be numbers", line=j + 1) from None
        if width is None or not np.isfinite(width) or width < 1 or width != int(width):
            raise InputError(path, f"motif {matrix_id}: missing or bad 'w=' width", line=j + 1)
        if not np.isfinite(nsites) or nsites < 0:
            raise InputError(path, f"motif {matrix_id}: bad 'nsites=' {nsites:g}", line=j + 1)
        rows = []
        for k in range(j + 1, j + 1 + int(width)):
            if k >= len(lines):
                raise InputError(path, f"motif {matrix_id}: file ends before its {int(width)} matrix rows", line=k)
            try:
                values = [float(v) for v in lines[k].split()]
            except ValueError:
                raise InputError(path, f"motif {matrix_id}: matrix row is not numbers: {lines[k]!r}", line=k + 1) from None
            if len(values) != 4 or not np.isfinite(values).all() or min(values) < 0 or abs(sum(values) - 1) > 0.02:
                raise InputError(
                    path, f"motif {matrix_id}: a matrix row needs 4 non-negative frequencies summing to 1, "
                    f"got {lines[k].strip()!r}", line=k + 1,
                )
            rows.append(values)
        freqs = np.array(rows).T
        motifs.append(Motif(name, matrix_id, freqs / freqs.sum(axis=0) * nsites))
        i = j + 1 + int(width)
    if not motifs:
        raise InputError(path, "no MOTIF entries found (not a MEME motif file?)")
    return motifs


def information_content(pwm: np.ndarray) -> np.ndarray:
    """Letter heights of a logo: probability × the column's information content.

    Parameters
    ----------
    pwm : ndarray, shape (4, w)
        Probabilities, columns summing to 1.

    Returns
    -------
    ndarray, shape (4, w)
        Heights in bits (each column sums to its information content, at most 2).
    """
    pwm = np.asarray(pwm, dtype=np.float64)
    ic = 2.0 + (pwm * np.log2(np.clip(pwm, 1e-12, None))).sum(axis=0)
    return pwm * ic[None, :]
