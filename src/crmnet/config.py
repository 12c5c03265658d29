"""Typed configuration: dataclasses that round-trip through JSON and reject unknown keys and wrong types.

Every config in crmnet (model, data, training, run) derives from :class:`Config`. A run directory holds
the resolved config as ``config.json``; loading it back gives the same objects, and a misspelt key is an
error instead of a silently ignored setting.

Types are strict in :meth:`Config.from_dict` and :meth:`Config.replace` (the paths user input takes): a
``bool`` field takes only ``true``/``false`` (not ``"no"``, not ``1``), an ``int`` field only an integer
(not ``256.7``, not ``true``, not ``"8"``), a ``float`` field an integer or a finite-or-infinite number
(not NaN, not a string), a ``str`` field only a string, a tuple field a JSON list of its element type.
Nothing is coerced; every error is a :class:`ConfigError` that names the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T", bound="Config")


class ConfigError(ValueError):
    """A config field with a wrong name, type or value; ``field`` is its (dotted) name.

    The message starts with the field: ``"batch_size: expected an integer, not 256.7"``. Callers that know
    where the value came from (a file, a command-line flag) add that as the source.
    """

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               dict: "an object (a JSON {...} of settings)", list: "a list"}


def _describe(kind: Any) -> str:
    if kind in _KIND_NAMES:
        return _KIND_NAMES[kind]
    if typing.get_origin(kind) is tuple:
        return "a list"
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(kind))
    return getattr(kind, "__name__", str(kind))


def _convert(name: str, value: Any, kind: Any) -> Any:
    """``value`` checked against the annotation ``kind`` (lists become tuples); ConfigError otherwise."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _convert(name, value, option)
            except ConfigError:
                continue
        wanted = " or ".join(_describe(a) for a in options) + (" or null" if type(None) in args else "")
        raise ConfigError(name, f"expected {wanted}, not {value!r}")
    if origin is typing.Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(name, f"expected {_describe(kind)}, not {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(name, f"expected a list, not {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
        if not args:
            return tuple(value)
        if len(args) != len(value):
            raise ConfigError(name, f"expected a list of {len(args)} values, not {len(value)}: {list(value)!r}")
        return tuple(_convert(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if origin is not None:  # dict[str, X], list[X]: the container type only
        kind = origin
    if kind is Any or not isinstance(kind, type):
        return value
    if issubclass(kind, Config) and isinstance(value, dict):
        return kind.from_dict(value, _prefix=f"{name}.")
    if kind is not bool and not issubclass(kind, Config) and hasattr(kind, "from_dict") and isinstance(value, dict):
        return kind.from_dict(value)
    if isinstance(value, bool) and kind is not bool:  # bool is an int in Python, never in a config
        raise ConfigError(name, f"expected {_describe(kind)}, not {json.dumps(value)}")
    if kind is float and isinstance(value, int | float):
        if math.isnan(value):
            raise ConfigError(name, "expected a number, not NaN")
        return value
    if not isinstance(value, kind):
        shown = json.dumps(value) if isinstance(value, bool | type(None)) else repr(value)
        raise ConfigError(name, f"expected {_describe(kind)}, not {shown}")
    return value


def _checked(cls: type, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in values if k not in fields)
    if unknown:
        raise ConfigError(prefix + unknown[0], f"unknown keys {unknown} of {cls.__name__}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    return {name: _convert(prefix + name, value, hints.get(name, Any)) for name, value in values.items()}


class Config:
    """Mixin for ``@dataclass`` configs: ``to_dict``, ``from_dict`` (strict), ``replace`` (strict)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (nested dataclasses as dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        """The fields as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any], _prefix: str = "") -> T:  # noqa: PYI019 (typing.Self needs 3.11)
        """Build the config from ``d`` (e.g. parsed JSON); unknown keys and wrong types are ConfigErrors.

        Value errors of the config's own ``__post_init__`` (a ValueError) pass through unchanged.
        """
        if not isinstance(d, dict):
            raise ConfigError(_prefix.rstrip(".") or cls.__name__, f"expected an object of settings, not {d!r}")
        return cls(**_checked(cls, d, _prefix))

    def replace(self: T, **overrides: Any) -> T:  # noqa: PYI019 (typing.Self needs 3.11)
        """A copy with ``overrides`` (checked as in :meth:`from_dict`)."""
        return dataclasses.replace(self, **_checked(type(self), overrides))  # type: ignore[type-var]
