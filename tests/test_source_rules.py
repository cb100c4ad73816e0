"""Rules the code keeps by construction, checked on the source of the engine and the simulator:
every kernel launch goes through PCN_LAUNCH (which checks it), and library code never exits,
aborts or asserts."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE = [p for d in ("csrc", "cuda", "bindings", "sim") for p in (ROOT / d).rglob("*") if p.suffix in {".h", ".cpp", ".cu", ".cuh"}]


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


@pytest.mark.skipif(not CODE, reason="source tree not available (installed package only)")
def test_kernels_are_launched_only_through_the_checked_helper():
    offenders = [str(p.relative_to(ROOT)) for p in CODE
                 if p.name != "launch.cuh" and "<<<" in _strip_comments(p.read_text())]
    assert not offenders, f"bare kernel launches (use PCN_LAUNCH): {offenders}"


@pytest.mark.skipif(not CODE, reason="source tree not available (installed package only)")
def test_no_exit_abort_or_assert_in_library_code():
    pattern = re.compile(r"\b(exit|abort|assert|_exit|quick_exit)\s*\(")
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in CODE for m in pattern.finditer(_strip_comments(p.read_text()))]
    assert not offenders, offenders
    py = [p for p in (ROOT / "pyconvnet").rglob("*.py")]
    bare = [str(p.relative_to(ROOT)) for p in py if re.search(r"^\s*assert\s", p.read_text(), flags=re.M)]
    assert not bare, f"bare assert in library Python (use exceptions): {bare}"


# The engine's layers, lowest first. A file may include project headers of its own layer or a lower
# one, never a higher one; the two kernel rooms (CPU and CUDA) do not include each other.
LAYERS = [
    ("basic types", ["csrc/error.h", "csrc/types.h", "csrc/types.cpp", "csrc/philox.h"]),
    ("tensors and devices", ["csrc/tensor.*", "csrc/device.*", "csrc/allocator.*", "csrc/cuda_check.h",
                             "csrc/staging.*"]),
    ("kernel declarations", ["csrc/kernels/*"]),
    ("kernels", ["csrc/cpu/*", "cuda/*"]),
    ("dispatch", ["csrc/check.*", "csrc/ops/*"]),
    ("bindings", ["bindings/*"]),
]


def _layer(rel):
    for i, (_, patterns) in enumerate(LAYERS):
        if any(pathlib.PurePosixPath(rel).match(p) for p in patterns):
            return i
    return None


def _included(path):
    """The project files `path` includes (quoted includes: next to it, else from the root)."""
    for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(), flags=re.M):
        for base in (path.parent, ROOT):
            target = (base / name).resolve()
            if target.is_file():
                yield target.relative_to(ROOT).as_posix()
                break


@pytest.mark.skipif(not CODE, reason="source tree not available (installed package only)")
def test_includes_never_point_up():
    unplaced, upward = [], []
    for p in CODE:
        rel = p.relative_to(ROOT).as_posix()
        layer = _layer(rel)
        if layer is None:
            unplaced.append(rel)
            continue
        for inc in _included(p):
            to = _layer(inc)
            room = lambda f: f.split("/")[0] if f.startswith("cuda/") else "/".join(f.split("/")[:2])
            if to is None or to > layer or (layer == to == 3 and room(inc) != room(rel)):
                upward.append(f"{rel} ({LAYERS[layer][0]}) includes {inc}")
    assert not unplaced, f"files in no layer (add them to LAYERS): {unplaced}"
    assert not upward, "includes that point up or across: " + "; ".join(upward)
