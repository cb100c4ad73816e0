"""UserError: a problem the user can fix (a bad flag, a damaged file, a diverged run). Every
command line (pyconvnet.console.run_command) prints its message as one "error: ..." line, without
a traceback, and exits with 2. The message names the flag or file, what is wrong and what to do."""
from __future__ import annotations


class UserError(Exception):
    pass
