"""What every command line shares: the one error path (run_command), the --help layout, the
progress line, the duration format and the --device flag."""
from __future__ import annotations

import argparse
import math
import sys
import time

from . import cuda, ops
from .errors import UserError

__all__ = ["UserError", "HelpFormatter", "run_command", "Progress", "format_duration", "resolve_device",
           "positive_int"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a single default (None: the help text says it)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def run_command(run, argv=None):
    """(exit code, result) of a command line's run(argv): a UserError becomes one "error: ..." line
    on stderr and exit code 2."""
    try:
        return 0, run(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return n


def format_duration(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on; "?" when unknown (infinite or NaN)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(max(0, seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """The progress line. On a terminal it is rewritten in place (at most every TTY_SECONDS when
    the caller asks due() first); in a log it is printed at every tenth of the total
    (every_seconds=None) or every `every_seconds` seconds, and at the end."""

    TTY_SECONDS = 0.25

    def __init__(self, stream=None, every_seconds: float | None = None):
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every_seconds = every_seconds
        self.last_len = 0
        self.last_time = time.monotonic()

    def due(self, done: int, total: int) -> bool:
        """Whether step(.., done, total) would show a line now: a caller whose text costs
        something to make (the trainer's loss waits for the GPU) asks first."""
        now = time.monotonic()
        if done == total:
            return True
        if self.tty:
            return now - self.last_time >= self.TTY_SECONDS
        if self.every_seconds is not None:
            return now - self.last_time >= self.every_seconds
        return done % max(1, total // 10) == 0

    def step(self, text: str, done: int, total: int, final: bool = False) -> None:
        """Shows `text`, the state after `done` of `total` units; final: the last update."""
        now = time.monotonic()
        if self.tty:
            self.last_time = now
            pad = max(0, self.last_len - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self.last_len = 0 if final else len(text)
            self.stream.flush()
        elif final or (now - self.last_time >= self.every_seconds if self.every_seconds is not None
                       else done == total or done % max(1, total // 10) == 0):
            self.last_time = now
            print(text, file=self.stream, flush=True)

    def line(self, text: str) -> None:
        """A line of its own, below the progress line (which it clears on a terminal)."""
        if self.tty and self.last_len:
            self.stream.write("\r" + " " * self.last_len + "\r")
            self.last_len = 0
        print(text, file=self.stream, flush=True)


PRECISIONS = ("fp32", "tf32")
GEMM_OPS = ("conv2d", "linear")


def resolve_precision(name: str, device: str, flag: str = "--precision") -> dict:
    """The conv2d and linear kernel versions of a --precision value on `device`: fp32 -> the
    defaults (0, FP32-accurate); tf32 -> each op's TF32 tensor-core version. A UserError for
    another value, or for tf32 on a device without TF32 kernels."""
    if name not in PRECISIONS:
        raise UserError(f"{flag} must be fp32 or tf32; got {name!r}")
    if name == "fp32":
        return {op: 0 for op in GEMM_OPS}
    versions = {op: ops.versions(op, device, precision="tf32") for op in GEMM_OPS}
    missing = [op for op, v in versions.items() if not v]
    if missing:
        raise UserError(f"{flag} tf32: {device} has no TF32 kernels for {' and '.join(missing)} (they run on CUDA "
                        f"tensor cores); use {flag} fp32 or a CUDA device")
    return {op: v[0] for op, v in versions.items()}


def resolve_device(name: str, flag: str = "--device") -> str:
    """The device of a --device value: auto (cuda if available, else cpu), cpu, cuda or cuda:N;
    a UserError when it is malformed or not available."""
    if name == "auto":
        return "cuda" if cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not cuda.is_available():
            raise UserError(f"{flag} {name}: CUDA is not available ({cuda.unavailable_reason()}); use {flag} cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= cuda.device_count():
            raise UserError(f"{flag} {name}: only {cuda.device_count()} CUDA device(s) visible")
        return name
    raise UserError(f"{flag} must be auto, cpu, cuda or cuda:N; got {name!r}")
