"""UserError: a problem the user can fix (a bad flag, a missing directory, a diverged run).
The command-line tools print its message as one line, without a traceback, and exit with 2."""
from __future__ import annotations

import sys


class UserError(Exception):
    pass


def run_command(run, argv=None):
    """(exit code, result) of a command-line tool's run(argv): a UserError becomes one
    "error: ..." line on stderr and exit code 2."""
    try:
        return 0, run(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
