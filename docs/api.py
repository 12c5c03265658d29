"""Build the API reference (static HTML from the numpydoc docstrings) with pdoc; warnings are errors.

    python docs/api.py [OUT_DIR]        (default: site/; `make docs` runs this)

Every module of the package is rendered, the command line included (its modules document the options).
Two pdoc warnings are not errors, both about pdoc's view rather than the code: the lazily imported names
of ``crmnet.__all__`` (``crmnet/__init__.py``) are not attributes of the module (each is documented where
it is defined), and a NamedTuple's generated ``__init__`` is read in the namespace of ``collections``,
where the module's own imports (``np``) of its postponed annotations are unknown.
"""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def all_modules() -> list[str]:
    """Every module and package under src/crmnet but ``__main__`` (importing it runs the command line)."""
    import crmnet

    names = [info.name for info in pkgutil.walk_packages(crmnet.__path__, "crmnet.")]
    return ["crmnet"] + [name for name in names if not name.endswith(".__main__")]


def modules() -> list[str]:
    """The module specs that make pdoc render every module once: pdoc walks a package's submodules
    itself unless the package defines ``__all__``, so only those packages' submodules are named."""
    import importlib

    return ["crmnet"] + [name for name in all_modules()[1:]
                         if name.count(".") == 1 or hasattr(importlib.import_module(name.rsplit(".", 1)[0]), "__all__")]


def _named_tuples(specs: list[str]) -> list[str]:
    """Qualified names of the NamedTuple classes defined in the modules ``specs``."""
    import importlib

    found = []
    for spec in specs:
        module = importlib.import_module(spec)
        found += [f"{spec}.{obj.__qualname__}" for obj in vars(module).values()
                  if isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")
                  and obj.__module__ == spec]
    return found


def build(out: Path) -> None:
    import re

    import pdoc
    import pdoc.render

    specs = modules()
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", r"Found '\w+' in crmnet\.__all__, but it does not resolve", UserWarning)
    for name in _named_tuples(all_modules()):
        warnings.filterwarnings("ignore", rf"Error parsing type annotation .* for {re.escape(name)}\.__init__\.",
                                UserWarning)
    pdoc.render.configure(docformat="numpy", show_source=True, search=True,
                          footer_text="crmnet API reference")
    pdoc.pdoc(*specs, output_directory=out)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "site")
