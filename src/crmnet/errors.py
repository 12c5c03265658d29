"""Errors a user can act on.

Every problem with a user's input is raised as :class:`InputError`, which names the file, the line (when
there is one) and the problem. The CLI prints it as ``crmnet: error: FILE:LINE: message`` and exits with
status 2 instead of showing a traceback from deep inside numpy or torch.
"""

from __future__ import annotations

import os


class CrmnetError(Exception):
    """Base class of the errors the CLI reports without a traceback."""


class InputError(CrmnetError, ValueError):
    """Bad input: names the source (file), the 1-based line if known, and the problem."""

    def __init__(self, source: str | os.PathLike | None, message: str, line: int | None = None):
        self.source = None if source is None else str(source)
        self.line = line
        self.problem = message
        where = self.source or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class OutputExistsError(CrmnetError, FileExistsError):
    """An output that already exists and was not to be overwritten."""

    def __init__(self, path: str | os.PathLike, hint: str = "pass --overwrite to replace it"):
        self.path = str(path)
        super().__init__(f"{self.path}: already exists; {hint}")


class OutputError(CrmnetError):
    """An output that cannot be written (no space left, read-only, no permission); names the output."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}")
