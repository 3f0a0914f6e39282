"""The ``asm`` command line. Each command group lives in its own module and imports heavy
libraries (torch, dawdreamer, librosa) only inside its commands, so ``asm --help`` stays fast.

User errors (``AsmError``) print as one red line and exit with code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from typing import Sequence

import typer

from asm.cli import backup as _backup  # noqa: E402,F401
from asm.cli import bench as _bench  # noqa: E402,F401
from asm.cli import datasets as _datasets  # noqa: E402,F401
from asm.cli import ddsp as _ddsp  # noqa: E402,F401
from asm.cli import fixtures as _fixtures  # noqa: E402,F401
from asm.cli import match as _match  # noqa: E402,F401
from asm.cli import midi as _midi  # noqa: E402,F401
from asm.cli import models as _models  # noqa: E402,F401
from asm.cli import perf as _perf  # noqa: E402,F401
from asm.cli import plugins as _plugins  # noqa: E402,F401
from asm.cli import presets as _presets  # noqa: E402,F401
from asm.cli import proxy as _proxy  # noqa: E402,F401
from asm.cli import registry as _registry  # noqa: E402,F401

# Command modules register themselves on ``app`` when imported.
from asm.cli import render as _render  # noqa: E402,F401
from asm.cli import serve as _serve  # noqa: E402,F401
from asm.cli.app import app, err_console
from asm.errors import AsmError


def run(args: Sequence[str] | None = None) -> int:
    """Run the CLI with ``args`` and return its exit code (the testable form of ``main``)."""
    args = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="asm", standalone_mode=False)  # usage errors come here, below
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AsmError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        return 2
    except typer.Abort:  # e.g. Ctrl-C at a confirmation prompt
        err_console.print("[bold red]aborted[/bold red]")
        return 1
    except Exception as exc:  # noqa: BLE001 - a usage error, or a database the user's disk or file broke: one line
        from sqlalchemy.exc import DatabaseError

        if _is_click_error(exc):
            return _print_click_error(exc, debug)
        if debug or not isinstance(exc, DatabaseError):
            raise
        from asm import paths
        from asm.registry.db import registry_error, sqlite_file

        err = registry_error(sqlite_file(paths.database_url()), exc, paths.database_url())
        err_console.print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/bold red] (finished work is kept; run again to resume)")
        return 130
    return 0


def _is_click_error(exc: Exception) -> bool:
    """A Click usage error (bad option value, missing option, unknown command), whichever Click Typer ships."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__)


def _print_click_error(exc, debug: bool) -> int:
    """Usage errors print as one red line, like ``AsmError`` (help for a bare command group)."""
    from rich.markup import escape

    if type(exc).__name__ == "NoArgsIsHelpError":
        pass  # Typer printed the group's help already (it checks the class by name too)
    elif debug:
        raise exc
    else:
        ctx = getattr(exc, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.format_message().replace('Value error, ', ''))}{where}", highlight=False,
                          soft_wrap=True)
    return exc.exit_code


def main() -> None:
    """The console entry point. Once the command is done (files written, rows committed, atexit
    handlers run), the process leaves with ``os._exit``: tearing down torch, DawDreamer and
    thousands of modules adds about 1 s to every command and saves nothing. With other (non-daemon) Python
    threads still running, it exits the normal way, which waits for them."""
    import atexit
    import os
    import threading

    code = run()
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    if "asm.registry.db" in sys.modules:  # closing the last connection folds SQLite's WAL into asm.db
        sys.modules["asm.registry.db"].dispose_engines()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to flush
            pass
    os._exit(code)


__all__ = ["app", "main", "run", "typer"]
