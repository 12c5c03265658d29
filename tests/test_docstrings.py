"""The public API documents every parameter and what it returns (numpydoc sections), so it stays true.

The public API: every function in ``crmnet.__all__``, in the ``__all__`` of each stage package
(``crmnet.data``, ``crmnet.models`` ...) and in the ``__all__`` of each of their modules that has one. Each has a ``Parameters`` section naming every parameter of its
signature (none may be missing or stale) and a ``Returns`` (or ``Yields``) section.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import crmnet

STAGES = ("data", "models", "zoo", "evaluation", "training", "interpret", "design", "workflows")
_NAME = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::|$)")


def public_functions() -> dict[str, object]:
    """Qualified name → function, for every function crmnet's packages export."""
    found = {}
    exported = [getattr(crmnet, n) for n in crmnet.__all__ if n != "__version__"]
    for stage in STAGES:
        package = importlib.import_module(f"crmnet.{stage}")
        exported += [getattr(package, n) for n in getattr(package, "__all__", ())]
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"crmnet.{stage}.{info.name}")
            exported += [getattr(module, n) for n in getattr(module, "__all__", ())]
    for obj in exported:
        if inspect.isfunction(obj):
            found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def sections(doc: str) -> dict[str, list[str]]:
    """The numpydoc sections of a docstring: title → its lines."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out, current = {}, None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"}:
            current = line.strip()
            out[current] = []
        elif current is not None and set(line.strip()) != {"-"}:
            out[current].append(line)
    return out


def documented_parameters(lines: list[str]) -> set[str]:
    """Names in a Parameters section (``name : type`` or ``a, b : type`` at the section's indentation)."""
    names = set()
    for line in lines:
        if line and not line[0].isspace() and (match := _NAME.match(line)):
            names |= {n.strip().lstrip("*") for n in match.group(1).split(",")}
    return names


FUNCTIONS = public_functions()


def test_the_public_api_is_found():
    assert len(FUNCTIONS) >= 70
    assert {"crmnet.evaluation.predict.predict", "crmnet.models.registry.build_model"} <= set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_public_function_documents_parameters_and_returns(name):
    func = FUNCTIONS[name]
    found = sections(func.__doc__)
    wanted = {p.name for p in inspect.signature(func).parameters.values() if p.name not in ("self", "cls")}
    if wanted:
        assert "Parameters" in found, f"{name}: no Parameters section"
        documented = documented_parameters(found["Parameters"])
        assert documented == wanted, f"{name}: undocumented {wanted - documented}, stale {documented - wanted}"
    assert "Returns" in found or "Yields" in found, f"{name}: no Returns section"


def test_the_rule_catches_a_missing_parameter():
    def f(a, b, *, c=1):
        """Do it.

        Parameters
        ----------
        a, b : int
            Two numbers.

        Returns
        -------
        int
        """

    assert documented_parameters(sections(f.__doc__)["Parameters"]) == {"a", "b"}  # c is missing
