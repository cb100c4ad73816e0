"""What the command-line tools share. UserError: a problem the user can fix (a bad flag, a
missing directory, a diverged run); the tools print its message as one line, without a
traceback, and exit with 2. HelpFormatter: their --help layout."""
from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    pass


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a single default (None: the help text says it)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def run_command(run, argv=None):
    """(exit code, result) of a command-line tool's run(argv): a UserError becomes one
    "error: ..." line on stderr and exit code 2."""
    try:
        return 0, run(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
