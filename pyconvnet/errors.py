"""UserError: a problem the user can fix (a bad flag, a missing directory, a diverged run).
The command-line tools print its message as one line, without a traceback, and exit with 2."""


class UserError(Exception):
    pass
