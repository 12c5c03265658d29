"""The test sets models are scored on: the registered public ones by name, or a user's file.

**Test sets** (:data:`crmnet.data.catalogue.TEST_SETS`) are resolved by name under a data directory laid out as by
``crmnet download`` (``DIR/vaishnav2022/test/...``, ``DIR/legnet2023/...``); the directory is the
argument, else ``$CRMNET_DATA_DIR``, else ``./data``:

=================  ========================================  ======  =========================
name               file                                       N       model input column
=================  ========================================  ======  =========================
complex-native     vaishnav2022/test/Native_complex.csv       3,733   ``sequence`` (110 nt)
complex-random     vaishnav2022/test/Random_complex_raw.csv   2,954   ``0`` (raw, 95-125 nt)
defined-native     vaishnav2022/test/Native_defined.csv       3,782   ``sequence``
defined-random     vaishnav2022/test/Random_defined.csv       5,289   ``seq110`` (110 nt)
=================  ========================================  ======  =========================

Each row's join key is its sequence in Vaishnav's 110-nt layout (last 110 nt, left-padded with N), which is
how the published prediction files spell the sequences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from crmnet.data.catalogue import TEST_SETS, data_dir
from crmnet.data.readers import Columns
from crmnet.errors import InputError

__all__ = ["LoadedTest", "load_test_file", "load_test_set", "resolve_test", "with_groups"]


@dataclass
class LoadedTest:
    """A test set in memory.

    sequences: model inputs; keys: join keys; measured: (n,) float64; groups: (n,) lineage/class labels from
    the group column, or None.
    """

    name: str
    source: Path
    sequences: list[str]
    keys: list[str]
    measured: np.ndarray
    lines: list[int]
    description: str = ""
    sequence_column: str | None = None
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.sequences)


def with_groups(columns: Columns | None, group_column: str | None) -> Columns | None:
    """The columns to read, with the group column as the per-row text column (the reader's ``id``).

    Parameters
    ----------
    columns : Columns, optional
        The header columns to read (None: the defaults).
    group_column : str, optional
        The column of lineage/class labels (None: ``columns`` unchanged).

    Returns
    -------
    Columns or None
    """
    if group_column is None:
        return columns
    return replace(columns or Columns(), id=group_column)


def _loaded(name: str, path: Path, description: str, columns: Columns | None = None,
            group_column: str | None = None) -> LoadedTest:
    """Read a test file.

    The join key of each row is its sequence in Vaishnav's 110-nt layout (last 110 nt, left-padded with N),
    which is how the published prediction files spell the sequences. group_column: a column of lineage/class
    labels, kept as :attr:`LoadedTest.groups`.
    """
    from crmnet.data.catalogue import check_measurements
    from crmnet.data.encoding import VAISHNAV, decode, encode
    from crmnet.data.readers import read_records
    from crmnet.fsutil import file_digest

    table = read_records(path, value="measured", columns=with_groups(columns, group_column))
    if table.measured is None:
        raise InputError(path, "no measured values: a test set needs a 'Measured Expression' column (or name one "
                               "with --measured-column), or the sequence<TAB>measured format")
    if table.format == "txt":
        check_measurements(path, file_digest(path), "it as --predictions")
    keys = decode(encode(table.sequences, VAISHNAV, source=str(path))[0])
    return LoadedTest(name, path, table.sequences, keys, np.asarray(table.measured, np.float64),
                      [int(x) for x in table.lines], description, table.sequence_column,
                      table.ids if group_column else None)


def load_test_set(name: str, directory: str | os.PathLike | None = None,
                  group_column: str | None = None) -> LoadedTest:
    """Load a registered test set by name from the data directory (see :func:`crmnet.data.catalogue.data_dir`).

    Parameters
    ----------
    name : str
        ``complex-native``, ``complex-random``, ``defined-native`` or ``defined-random``.
    directory : path-like, optional
        The data directory ``crmnet download`` wrote; None: ``$CRMNET_DATA_DIR`` or ``./data``.
    group_column : str, optional
        A column holding each row's lineage or class, for cluster-bootstrap intervals.

    Returns
    -------
    LoadedTest
        n raw sequences, their join keys, ``measured`` (n,) float64 and ``groups`` (n,) or None.
    """
    if name not in TEST_SETS:
        raise InputError(None, f"unknown test set {name!r}; known: {', '.join(TEST_SETS)} (or give a file)")
    spec = TEST_SETS[name]
    path = data_dir(directory) / spec.path
    if not path.is_file():
        raise InputError(path, f"test set {name!r} not found (run `crmnet download` or pass --data-dir)")
    test = _loaded(name, path, spec.description, group_column=group_column)
    if test.sequence_column != spec.sequence_column:
        raise InputError(path, f"sequences were read from column {test.sequence_column!r}, expected "
                               f"{spec.sequence_column!r}: not the published file?", line=1)
    return test


def load_test_file(path: str | os.PathLike, columns: Columns | None = None,
                   group_column: str | None = None) -> LoadedTest:
    """A user's test file (a header naming sequence and measured columns, or sequence<TAB>measured).

    Parameters
    ----------
    path : path-like
        The file (plain or gzip).
    columns : Columns, optional
        Which header columns hold the sequence and the measured values.
    group_column : str, optional
        A column of each row's lineage or class.

    Returns
    -------
    LoadedTest
        Named after the file's stem.
    """
    path = Path(path)
    return _loaded(path.stem, path, str(path), columns, group_column)


def resolve_test(name_or_file: str, directory: str | os.PathLike | None = None,
                 columns: Columns | None = None, group_column: str | None = None) -> LoadedTest:
    """A registered test-set name, or else a path to a file with sequences and measured values.

    Parameters
    ----------
    name_or_file : str
        A name in :data:`~crmnet.data.catalogue.TEST_SETS` or a file.
    directory : path-like, optional
        The data directory of registered test sets.
    columns : Columns, optional
        Header columns of a file.
    group_column : str, optional
        A column of each row's lineage or class.

    Returns
    -------
    LoadedTest
    """
    if name_or_file in TEST_SETS:
        return load_test_set(name_or_file, directory, group_column)
    if Path(name_or_file).is_file():
        return load_test_file(name_or_file, columns, group_column)
    raise InputError(name_or_file, f"neither a test set ({', '.join(TEST_SETS)}) nor an existing file")
