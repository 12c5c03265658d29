"""The Vaishnav et al. 2022 promoter construct: constant flanks around an 80-nt random region.

Every measured sequence is ``LEFT_FLANK + N80 + RIGHT_FLANK`` (110 nt; some random-set rows are shorter
or longer). Analyses that mutate, score or mask "the variable region" take its coordinates from here.
"""

from __future__ import annotations

import numpy as np

LEFT_FLANK = "TGCATTTTTTTCACATC"  # 17 nt, constant in every construct
RIGHT_FLANK = "GGTTACGGCTGTT"  # 13 nt
VARIABLE_LENGTH = 80
FLANKS = (len(LEFT_FLANK), len(RIGHT_FLANK))


def variable_region(lengths: np.ndarray, width: int, flanks: tuple[int, int] = FLANKS) -> np.ndarray:
    """Mask of the positions between the constant flanks.

    Parameters
    ----------
    lengths : (n,) int
        True sequence lengths.
    width : int
        Width of the mask (at least ``lengths.max()``).
    flanks : (int, int)
        Left and right flank lengths.

    Returns
    -------
    (n, width) bool
    """
    j = np.arange(width)[None, :]
    lengths = np.asarray(lengths)[:, None]
    return (j >= flanks[0]) & (j < lengths - flanks[1])


#: length of the whole construct (left flank + variable region + right flank)
CONSTRUCT_LENGTH = len(LEFT_FLANK) + VARIABLE_LENGTH + len(RIGHT_FLANK)


def expects_construct(enc) -> bool:
    """Whether a model with encoding ``enc`` reads whole constructs (and so needs the flanks of a bare region).

    Every model whose input holds the 110-nt construct (CRMnet's 112 nt, Vaishnav's 110, released LegNet's
    17 + 150) learned from sequences that carried the constant flanks; a model with a shorter input
    learned something else and is left alone.

    Parameters
    ----------
    enc : crmnet.data.encoding.Encoding
        The model's input encoding.

    Returns
    -------
    bool
    """
    return enc.body_length + enc.trim_start >= CONSTRUCT_LENGTH


def add_flanks(sequences, enc) -> tuple[list, int]:
    """Complete every sequence of exactly the variable length with the construct's constant flanks.

    Parameters
    ----------
    sequences : sequence of str or bytes
        DNA sequences as read.
    enc : crmnet.data.encoding.Encoding
        The model's input encoding (:func:`expects_construct` decides whether flanks apply).

    Returns
    -------
    list
        The sequences, each 80-nt one now ``LEFT_FLANK + region + RIGHT_FLANK`` (same type as given).
    int
        How many were completed.
    """
    if not expects_construct(enc):
        return list(sequences), 0
    left, right, out, n = LEFT_FLANK, RIGHT_FLANK, [], 0
    for s in sequences:
        if len(s) == VARIABLE_LENGTH:
            out.append(left + s + right if isinstance(s, str) else left.encode() + bytes(s) + right.encode())
            n += 1
        else:
            out.append(s)
    return out, n


def flank_note(n: int, option: str | None = "--no-flanks") -> str:
    """The one line telling a user that ``n`` bare variable regions were completed with the flanks.

    Parameters
    ----------
    n : int
        Sequences completed.
    option : str or None
        How to turn the completion off, named in the line (the CLI flag, a page's checkbox).

    Returns
    -------
    str
    """
    off = f"; {option} pads them with N instead" if option else ""
    return (f"note: {n:,} sequence{'s' if n != 1 else ''} of exactly {VARIABLE_LENGTH} nt (the assay's variable "
            f"region) completed with the construct's constant flanks ({len(LEFT_FLANK)} nt {LEFT_FLANK} before, "
            f"{len(RIGHT_FLANK)} nt {RIGHT_FLANK} after; {CONSTRUCT_LENGTH} nt in all){off}.")


def add_flanks_option(parser) -> None:
    """Add ``--no-flanks`` (``args.flanks``, default True) to an argparse ``parser`` reading sequences."""
    parser.add_argument("--no-flanks", dest="flanks", action="store_false",
                        help=f"pad a sequence of exactly {VARIABLE_LENGTH} nt with N like any other short one "
                             "(default: complete it with the construct's constant flanks, "
                             f"{len(LEFT_FLANK)} + {len(RIGHT_FLANK)} nt, the way it was measured)")
