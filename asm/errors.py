"""The one exception type for errors a user can cause.

The CLI prints an ``AsmError`` as a single red line and exits with code 2; anything else is a bug
and shows a traceback only with ``--debug``.
"""


class AsmError(Exception):
    """A problem with the user's input or environment, explained in one line."""
