"""Typed configuration: dataclasses that round-trip through JSON and reject unknown keys.

Every config in crmnet (model, data, training, run) derives from :class:`Config`. A run directory holds
the resolved config as ``config.json``; loading it back gives the same objects, and a misspelt key is an
error instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, TypeVar

T = TypeVar("T", bound="Config")


class Config:
    """Mixin for ``@dataclass`` configs: ``to_dict``, ``from_dict`` (strict), ``replace`` (strict)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:  # noqa: PYI019 (typing.Self needs 3.11)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(fields)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in d.items():
            kind = hints.get(name)
            if isinstance(kind, type) and issubclass(kind, Config) and isinstance(value, dict):
                value = kind.from_dict(value)
            elif isinstance(value, list) and typing.get_origin(kind) is tuple:
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def replace(self: T, **overrides: Any) -> T:  # noqa: PYI019 (typing.Self needs 3.11)
        fields = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]
