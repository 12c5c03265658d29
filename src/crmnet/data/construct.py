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
