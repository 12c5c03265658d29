"""The options every command shares, defined once: devices, progress, batch sizes, outputs, inputs, limits.

A command declares each file it reads with :func:`add_input` and each output with :func:`add_output`
(both are ``parser.add_argument`` plus a record on the parser). :func:`check_paths`, which
:func:`crmnet.cli.main` runs on every command's arguments before the command starts, refuses an output
that is, contains or lies inside any declared input (files, checkpoints, directories; symlinks resolved),
the current directory, an empty name, and ``-`` unless the command writes standard output there. So
``--overwrite`` can never replace an input, whatever the command, present or future.

Number options use the argparse types here (:func:`int_range`, :func:`finite_float`, :data:`SEED`), so a
value out of range is one line and exit status 2 before any work, and the limit is stated in ``--help``.

A command with a typed config (:class:`crmnet.config.Config`: ``TrainConfig``, ``DesignConfig``,
``EvolveConfig``, ``PrepareConfig``) declares it with :func:`add_config_options`: one option per field
(``max_steps`` → ``--max-steps``), its type and choices from the field's annotation and its default from
the field, unless the field's :class:`Flag` says otherwise (a bounded type, another name, an input file);
:func:`config_values` then reads the given values back as the config's keyword arguments.
"""

from __future__ import annotations

import argparse
import math
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_BATCH_SIZE = 1024
MAX_BATCH_SIZE = 1 << 20
MAX_SEED = 2**32 - 1  # numpy's SeedSequence accepts larger, torch.manual_seed and the CUDA generators do not
PROGRESS_HELP = ("no progress (by default a bar on a terminal, else a log line every $CRMNET_PROGRESS_INTERVAL "
                 "seconds, default 30)")
DEVICE_HELP = "torch device: cpu, cuda, cuda:N or mps (default: cuda if available, else cpu)"
_INPUTS, _OUTPUTS, _CONFIG = "crmnet_inputs", "crmnet_outputs", "crmnet_config"


def default_device(device: str | None) -> str:
    """The device a command runs on: ``device`` when given, else CUDA when available, else the CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def require_positive(name: str, value: int) -> None:
    """Refuse an option ``name`` whose integer ``value`` is below 1 (one-line error naming the option)."""
    if value < 1:
        from crmnet.errors import InputError

        raise InputError(None, f"{name} must be at least 1, got {value}")


def device_type(text: str) -> str:
    """Argparse type of ``--device``: a device torch knows and this machine has, else a one-line error."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available here (torch {torch.__version__} "
                                             f"{'has no CUDA support' if torch.version.cuda is None else 'sees no GPU'})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: MPS (Apple GPU) is not available here")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r}: crmnet runs on cpu, cuda or mps, not {device.type}")
    return text


def int_range(low: int, high: int | None = None):
    """An argparse type: an integer in ``[low, high]`` (``high`` None: no upper limit)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            limit = f"at least {low:,}" if high is None else f"between {low:,} and {high:,}"
            raise argparse.ArgumentTypeError(f"must be {limit}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def finite_float(low: float | None = None, high: float | None = None, open_low: bool = False):
    """An argparse type: a finite number in ``[low, high]`` (``(low, high]`` with ``open_low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        below = low is not None and (value <= low if open_low else value < low)
        if below or (high is not None and value > high):
            lo = "" if low is None else f"{'>' if open_low else '>='} {low:g}"
            hi = "" if high is None else f"<= {high:g}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(x for x in (lo, hi) if x)}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


POSITIVE = int_range(1)
SEED = int_range(0, MAX_SEED)
SEED_HELP = f"random seed, 0 to {MAX_SEED:,} (default 0); same seed, same output"


def add_device(parser: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    """``--device``: checked when parsed (a device torch knows and this machine has); default :func:`default_device`."""
    parser.add_argument("--device", type=device_type, help=help)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (``args.quiet``), with ``--no-progress`` as a hidden alias."""
    parser.add_argument("--quiet", dest="quiet", action="store_true", help=PROGRESS_HELP)
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


def add_batch_size(parser: argparse.ArgumentParser, default: int | None = DEFAULT_BATCH_SIZE,
                   what: str = "sequences per forward pass", inference: bool = True) -> None:
    """``--batch-size`` between 1 and :data:`MAX_BATCH_SIZE` (``inference``: results do not depend on it)."""
    shown = "" if default is None else f"; default {default:,}"
    note = "; results do not depend on it" if inference else ""
    parser.add_argument("--batch-size", type=int_range(1, MAX_BATCH_SIZE), default=default, metavar="N",
                        help=f"{what}, 1 to {MAX_BATCH_SIZE:,}{shown}{note}")


def add_overwrite(parser: argparse.ArgumentParser, what: str = "an existing output") -> None:
    """``--overwrite``: replace ``what`` (only what crmnet wrote, never an input)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} (only crmnet's own outputs, never an input)")


def _record(parser: argparse.ArgumentParser, key: str, entry: tuple) -> None:
    parser.set_defaults(**{key: (*(parser.get_default(key) or ()), entry)})


def add_input(parser: argparse.ArgumentParser, *flags: str, named: bool = False, **kwargs) -> argparse.Action:
    """``parser.add_argument(*flags, **kwargs)`` for a file or directory the command reads.

    Declared inputs are what :func:`check_paths` protects from every output. ``named``: values may be
    ``NAME=PATH`` (e.g. ``evolve --checkpoint complex=A.pt``).
    """
    action = parser.add_argument(*flags, **kwargs)
    _record(parser, _INPUTS, (action.dest, named))
    return action


def add_output(parser: argparse.ArgumentParser, *flags: str, stdout: bool = False, into: bool = False,
               **kwargs) -> argparse.Action:
    """``parser.add_argument(*flags, **kwargs)`` for a file or directory the command writes.

    ``stdout``: ``-`` means standard output (else ``-`` is refused rather than written as a file named ``-``).
    ``into``: a directory the command writes files into and never replaces (``download --out``), so it may
    be the current directory.
    """
    action = parser.add_argument(*flags, **kwargs)
    _record(parser, _OUTPUTS, (action.dest, "stdout" if stdout else "into" if into else "file"))
    return action


def declared(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The dests of the inputs and of the outputs declared by the command that parsed ``args``."""
    return ([d for d, _ in getattr(args, _INPUTS, None) or ()], [d for d, _ in getattr(args, _OUTPUTS, None) or ()])


def _values(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _input_paths(args: argparse.Namespace) -> list[tuple[str, Path]]:
    paths = []
    for dest, named in getattr(args, _INPUTS, None) or ():
        for text in _values(getattr(args, dest, None)):
            if text == "-" or not text:
                continue
            candidates = {text}
            if named and "=" in text and not os.path.lexists(text):
                candidates |= {text.partition("=")[2], text.rpartition("=")[2]}
            paths += [(text, Path(c).resolve()) for c in candidates if c]
    return paths


def _flag(parser_dest: str) -> str:
    return "--" + parser_dest.replace("_", "-")


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output that would replace or land in one of the command's inputs.

    Refused: an output that is an input, holds one (a directory above it) or lies inside an input
    directory, symlinks resolved; an empty name; the current directory or one above it; ``-`` where the
    command does not write standard output.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of one command (declared through :func:`add_input` / :func:`add_output`).

    Raises
    ------
    crmnet.errors.InputError
        Naming the output option and path.
    """
    from crmnet.errors import InputError

    inputs = _input_paths(args)
    cwd = Path.cwd().resolve()
    for dest, kind in getattr(args, _OUTPUTS, None) or ():
        for text in _values(getattr(args, dest, None)):
            where = f"{_flag(dest)} {text}" if text else _flag(dest)
            if text == "-":
                if kind == "stdout":
                    continue
                raise InputError(where, "this command writes files, not standard output: give a file or "
                                        "directory name (./- if you really mean a file named '-')")
            if not text.strip():
                raise InputError(_flag(dest), "is empty: give the name of the output")
            out = Path(text).resolve()
            if kind != "into" and (out == cwd or out in cwd.parents):
                raise InputError(where, "is the current directory (or holds it): give a new name")
            for given, path in inputs:
                if out == path:
                    raise InputError(where, f"is an input of this command ({given}); an output never replaces "
                                            "an input: choose another name")
                if out in path.parents:
                    raise InputError(where, f"holds the input {given}; an output never replaces a directory "
                                            "holding an input: choose another name")
                if path in out.parents:
                    raise InputError(where, f"lies inside the input directory {given}; write it elsewhere")


_FIELD_DEFAULT: Any = object()  # a Flag's default: the config field's own


@dataclass(frozen=True)
class Flag:
    """How one config field is offered as an option, where its annotation and default do not say it all.

    help: the help text (state limits and the default there). type: an argparse type (e.g.
    :func:`int_range`); None: the annotation's (``int | None`` → int). choices: None: a ``Literal``
    annotation's values. flag: the option's name (default ``--field-name``); aliases: more names. input: a
    file or directory the command reads (:func:`add_input`). default: the option's default (default: the
    field's). action: an argparse action (a bool field: ``--x/--no-x`` unless ``store_true``). metavar.
    convert: applied by :func:`config_values` to a given value (e.g. a 1-based range → 0-based).
    """

    help: str
    type: Callable | None = None
    choices: Sequence | None = None
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    input: bool = False
    default: Any = _FIELD_DEFAULT
    action: Any = None
    metavar: str | None = None
    convert: Callable | None = None


def _annotation_type(kind) -> tuple[Any, tuple | None]:
    """(argparse type, choices) of a field annotation: ``X | None`` → X, ``Literal[...]`` → its values."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Literal:
        return type(args[0]), tuple(args)
    if args and typing.get_origin(kind) is not tuple:
        return _annotation_type(args[0])
    return kind, None


def add_config_options(parser, config: type, flags: dict[str, Flag], *, skip: Sequence[str] = (),
                       defaults: bool = True) -> None:
    """One option per field of the dataclass ``config`` (in field order), except those in ``skip``.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where the options go (a group shares its parser's defaults, where the declaration is recorded).
    config : type
        A :class:`crmnet.config.Config` dataclass.
    flags : dict
        Field name → :class:`Flag`, for every field not skipped (a new field without one is an error, so
        no setting goes without its help text).
    skip : sequence of str
        Fields the command sets otherwise (a composite such as ``constraints``, or ``--quiet``).
    defaults : bool
        Give each option its field's default; False: None (only the values given are read, e.g. so a
        config file's values stand where no flag was given).
    """
    hints = typing.get_type_hints(config)
    for f in fields(config):
        if f.name in skip:
            continue
        spec = flags[f.name]
        field_default = f.default if f.default is not MISSING else None
        default = (field_default if defaults else None) if spec.default is _FIELD_DEFAULT else spec.default
        names = [spec.flag or "--" + f.name.replace("_", "-"), *spec.aliases]
        kind, choices = _annotation_type(hints[f.name])
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": spec.help}
        if spec.metavar:
            kwargs["metavar"] = spec.metavar
        if spec.action is not None or kind is bool:
            kwargs["action"] = spec.action or argparse.BooleanOptionalAction
            if kind is bool and spec.action is None:
                kwargs["help"] = f"{spec.help} (default {field_default})"
        else:
            kwargs.update(type=spec.type or kind, choices=spec.choices if spec.choices is not None else choices)
        if spec.input:
            add_input(parser, *names, **kwargs)
        else:
            parser.add_argument(*names, **kwargs)
        _record(parser, _CONFIG, (f.name, spec.convert))


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line (options declared by :func:`add_config_options`).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments.

    Returns
    -------
    dict
        Field name → value (each :attr:`Flag.convert` applied), for every option that is not None.
    """
    values = {}
    for name, convert in getattr(args, _CONFIG, None) or ():
        value = getattr(args, name, None)
        if value is not None:
            values[name] = convert(value) if convert is not None else value
    return values
