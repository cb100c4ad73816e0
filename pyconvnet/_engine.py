"""Finds the compiled engine, pyconvnet._C.

Normally it sits beside this file (an installed package, or a developer's in-place build by
scripts/build_inplace.sh). But `python -m pyconvnet.train` run from the root of a source checkout
imports this source tree, which holds no compiled module, instead of the installed package; in
that case the installed package's engine is loaded, so the README's commands work from anywhere.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import pathlib
import sys

_HINT = ("pyconvnet's compiled engine (pyconvnet._C) was not found. Install the package with "
         "`pip install .` from the source checkout (or, for development, build it in place with "
         "scripts/build_inplace.sh).")


def _installed_engine_path() -> pathlib.Path | None:
    here = pathlib.Path(__file__).resolve().parent
    for entry in sys.path:
        pkg = pathlib.Path(entry or ".").resolve() / "pyconvnet"
        if pkg == here or not pkg.is_dir():
            continue
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = pkg / f"_C{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_engine():
    try:
        return importlib.import_module("pyconvnet._C")
    except ModuleNotFoundError as first:
        if first.name != "pyconvnet._C":
            raise
        path = _installed_engine_path()
        if path is None:
            raise ImportError(_HINT) from None
        spec = importlib.util.spec_from_file_location("pyconvnet._C", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["pyconvnet._C"] = module
        spec.loader.exec_module(module)
        return module
