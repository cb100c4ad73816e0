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
    # The simulator build's stand-in for the CUDA toolkit: it includes nothing of the engine.
    ("simulated CUDA runtime", ["sim/include/*", "sim/sim.h", "sim/runtime.cpp", "sim/engine.cpp"]),
    ("basic types", ["csrc/error.h", "csrc/types.h", "csrc/types.cpp", "csrc/philox.h"]),
    ("tensors and devices", ["csrc/tensor.*", "csrc/device.*", "csrc/allocator.*", "csrc/cuda_check.h",
                             "csrc/staging.*", "csrc/transfer.*"]),
    ("kernel declarations", ["csrc/kernels/*"]),
    ("kernels", ["csrc/cpu/*", "cuda/*", "sim/selftest.*"]),
    ("dispatch", ["csrc/check.*", "csrc/ops/*"]),
    ("bindings", ["bindings/*", "sim/bindings.cpp"]),
]


KERNELS = [name for name, _ in LAYERS].index("kernels")


def _room(rel):
    """Kernels may include only their own device's kernels: CUDA (cuda/, the simulator's test
    kernels) or one folder of csrc/."""
    return "cuda" if rel.startswith(("cuda/", "sim/")) else "/".join(rel.split("/")[:2])


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
            if to is None or to > layer or (layer == to == KERNELS and _room(inc) != _room(rel)):
                upward.append(f"{rel} ({LAYERS[layer][0]}) includes {inc}")
    assert not unplaced, f"files in no layer (add them to LAYERS): {unplaced}"
    assert not upward, "includes that point up or across: " + "; ".join(upward)


TEXT = [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and "build" not in p.parts
        and p.suffix in {".py", ".md", ".h", ".cpp", ".cu", ".cuh", ".txt", ".toml", ".sh", ".cfg", ".yml", ".yaml"}]


@pytest.mark.skipif(not CODE, reason="source tree not available (installed package only)")
def test_nothing_refers_to_files_outside_the_repository():
    outside = "../" + "shared"  # spelt in two parts so that this file does not match itself
    offenders = [str(p.relative_to(ROOT)) for p in TEXT if outside in p.read_text(errors="replace")]
    assert not offenders, f"references to {outside} (the spec is docs/alexnet.md): {offenders}"


COMMAND_LINES = {"train", "evaluate", "show"}  # modules that are only a command line


def test_no_module_imports_a_command_line():
    """The command lines build on the rooms of the package (console, rundir, inference, ...),
    never on each other."""
    import ast
    offenders = []
    for p in (ROOT / "pyconvnet").glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyconvnet."):
                names = [node.module.split(".")[1]]
            else:
                continue
            offenders += [f"{p.name} imports {n}" for n in names if n in COMMAND_LINES and n != p.stem]
    assert not offenders, offenders
