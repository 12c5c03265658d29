"""The ``crmnet`` command line: one subcommand per pipeline stage.

Each module in this package defines ``register(subparsers)`` and adds its subcommands; handlers are thin
calls into the library and import heavy dependencies only when they run, so ``crmnet --help`` is fast.
The boundary between the library and the user is :func:`main`, the one place that turns failures a user
can act on into one line on stderr and exit status 2 (so every command, present or future, inherits it):
:class:`crmnet.errors.CrmnetError`; an operating-system refusal naming a file (no space left, read-only,
permission denied, no such file, is a directory...); running out of memory (a size option too large);
undecodable text. Anything else is a bug in crmnet and keeps its traceback. Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys

from crmnet.cli.options import check_paths, default_device, require_positive
from crmnet.errors import CrmnetError
from crmnet.version import __version__

__all__ = ["build_parser", "default_device", "main", "require_positive", "user_error_message"]
HELPERS = frozenset({"options"})  # modules of this package that hold no command


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract.

    A bad option is one line, ``crmnet COMMAND: error: ...`` with exit status 2 (argparse would print the
    usage lines first; ``--help`` still shows them). Sub-command parsers are of the same class.
    """

    def error(self, message: str):
        """Print ``message`` on one line (with a pointer to --help) and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``crmnet`` argument parser, with every ``crmnet.cli`` module's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subcommand sets ``func``, the function that runs it.
    """
    parser = Parser(
        prog="crmnet",
        description="CRMnet and its peers: predict yeast promoter expression from sequence.",
    )
    parser.add_argument("--version", action="version", version=f"crmnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in HELPERS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


# Operating-system errors that are about the user's files or machine, not about crmnet's code.
USER_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                         errno.EISDIR, errno.ENOTDIR, errno.EFBIG, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST,
                         errno.ENOTEMPTY, errno.EMFILE, errno.ENFILE, errno.ENXIO, errno.ENODEV, errno.EIO})
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for a failure the user can act on, or None for a bug (keep the traceback)."""
    if isinstance(exc, CrmnetError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.errno in USER_ERRNOS and (exc.filename is not None or exc.errno in _NO_ROOM):
        where = exc.filename if exc.filename is not None else "cannot write"
        text = f"{where}: {exc.strerror or exc}"
    elif isinstance(exc, MemoryError):
        text = f"out of memory{f' ({exc})' if str(exc) else ''}: is a size option (length, batch size, n) too large?"
    elif isinstance(exc, UnicodeDecodeError):
        text = (f"cannot read text as {exc.encoding} (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
                "not a text file, or another encoding; save it as UTF-8")
    else:
        return None
    return " ".join(text.split())  # one line, whatever the message held


def main(argv: list[str] | None = None) -> int:
    """Run the ``crmnet`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit status: the subcommand's, 2 for a user error (one line on stderr), 130 when interrupted.
    """
    try:
        try:  # inside: Ctrl-C while the subcommands import is an interrupt too
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, or an option refused (already printed on one line)
            return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        check_paths(args)  # every command: no output on an input, before any work
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("crmnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except (CrmnetError, OSError, MemoryError, UnicodeDecodeError) as exc:
        message = user_error_message(exc)
        if message is None:
            raise
        print(f"crmnet: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
