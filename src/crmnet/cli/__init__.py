"""The ``crmnet`` command line: one subcommand per pipeline stage.

Each module in this package defines ``register(subparsers)`` and adds its subcommands; handlers are thin
calls into the library and import heavy dependencies only when they run, so ``crmnet --help`` is fast.
Errors a user can act on (:class:`crmnet.errors.CrmnetError`) are printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from crmnet.errors import CrmnetError
from crmnet.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crmnet",
        description="CRMnet and its peers: predict yeast promoter expression from sequence.",
    )
    parser.add_argument("--version", action="version", version=f"crmnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CrmnetError as exc:
        print(f"crmnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crmnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
