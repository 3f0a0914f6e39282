"""Run an object in a child process, so that native code that crashes cannot take the caller down.

``Isolated(factory, *args)`` starts a child (a fresh interpreter: no inherited threads, locks or
``__main__`` re-import as with multiprocessing), builds ``factory(*args)`` there and runs its methods on request: ``call("render", ...)``.
When the child dies (a segfault or abort inside a plugin) or stops answering, the call raises one
``AsmError`` that names what happened, with the last line the plugin printed; the next call starts a
fresh child. The child's stdout/stderr go to a log file, so plugin chatter never reaches the
terminal or corrupts machine-readable output.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asm
from asm.errors import AsmError

START_TIMEOUT = 120.0  # seconds to start the child and build the object (plugin load)
CALL_TIMEOUT = 300.0


def _signal_name(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _send(fh, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(data)) + data)
    fh.flush()


def _recv_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None) -> Any:
    (size,) = struct.unpack("<Q", _recv_exact(fd, 8, deadline))
    return pickle.loads(_recv_exact(fd, size, deadline))


def child_main() -> None:
    """The child's loop: build the object, then answer calls until told to stop or stdin closes."""
    out = os.fdopen(os.dup(1), "wb")  # the protocol keeps the real stdout ...
    os.dup2(2, 1)  # ... and whatever the plugin prints goes to the log, like stderr
    try:
        factory, args = _recv(0)
        obj = factory(*args)
    except AsmError as exc:
        _send(out, ("asm_error", str(exc)))
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        traceback.print_exc()
        _send(out, ("error", f"{type(exc).__name__}: {exc}"))
        return
    _send(out, ("ok", None))
    while True:
        try:
            method, call_args = _recv(0)
        except (EOFError, OSError):
            return
        if method == "__close__":
            getattr(obj, "close", lambda: None)()
            return
        try:
            _send(out, ("ok", getattr(obj, method)(*call_args)))
        except AsmError as exc:
            _send(out, ("asm_error", str(exc)))
        except BaseException as exc:  # noqa: BLE001
            traceback.print_exc()
            _send(out, ("error", f"{type(exc).__name__}: {exc}"))


class Isolated:
    """An object living in a child process; its methods are called through ``call``."""

    def __init__(self, factory: Callable[..., Any], *args: Any, label: str = "plugin",
                 start_timeout: float = START_TIMEOUT, call_timeout: float = CALL_TIMEOUT):
        self.factory, self.args, self.label = factory, args, label
        self.start_timeout, self.call_timeout = start_timeout, call_timeout
        self._proc: subprocess.Popen | None = None
        fd, self.log_path = tempfile.mkstemp(prefix="asm-plugin-", suffix=".log")
        os.close(fd)
        self._start()

    # --- lifecycle ---------------------------------------------------------------------------
    def _start(self) -> None:
        package_root = str(Path(asm.__file__).resolve().parent.parent)  # the child imports this same asm
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from asm.synth.isolation import child_main; child_main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, close_fds=True, env=env,
                start_new_session=True,  # Ctrl-C reaches the parent, which stops the child cleanly
            )
        try:
            _send(self._proc.stdin, (self.factory, self.args))
        except (OSError, ValueError):
            self._died("loading")
        self._receive("loading", self.start_timeout)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                _send(proc.stdin, ("__close__", ()))
                proc.wait(5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for fh in (proc.stdin, proc.stdout):
            try:
                fh.close()
            except OSError:
                pass

    def __del__(self) -> None:
        try:
            self.close()
            Path(self.log_path).unlink(missing_ok=True)
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass

    # --- calls -------------------------------------------------------------------------------
    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Run ``method(*args)`` in the child; a dead child is restarted first."""
        if not self.alive:
            self.close()
            self._start()
        try:
            _send(self._proc.stdin, (method, args))
        except (OSError, ValueError):
            return self._died(method)
        return self._receive(method, timeout or self.call_timeout)

    def _receive(self, what: str, timeout: float) -> Any:
        try:
            status, payload = _recv(self._proc.stdout.fileno(), time.monotonic() + timeout)
        except TimeoutError:
            self._proc.kill()
            self.close()
            raise AsmError(f"{self.label} did not answer within {timeout:g} s while {_doing(what)}; "
                           "it was stopped") from None
        except (EOFError, OSError, pickle.UnpicklingError, struct.error):
            return self._died(what)
        if status == "ok":
            return payload
        if status == "asm_error":
            raise AsmError(payload)
        raise AsmError(f"{self.label} failed while {_doing(what)}: {payload}")

    def _died(self, what: str):
        proc = self._proc
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        code = proc.returncode
        self.close()
        last = self.last_log_line()
        again = "" if what == "loading" else "; it is restarted on the next call"
        raise AsmError(f"{self.label} crashed ({_signal_name(code)}) while {_doing(what)}"
                       + (f": {last}" if last else "") + again)

    def last_log_line(self) -> str:
        try:
            lines = [line.strip() for line in Path(self.log_path).read_text(errors="replace").splitlines()]
        except OSError:
            return ""
        noise = ("Attempting to load", "Creating VST", "Initialising VST")
        lines = [line for line in lines if line and not line.startswith(noise)]
        return lines[-1][:200] if lines else ""


def _doing(method: str) -> str:
    return {"loading": "loading", "_render": "rendering", "render": "rendering"}.get(method, f"running {method}")


def run_isolated(factory: Callable[..., Any], *args: Any, method: str, method_args: tuple = (),
                 label: str = "plugin", timeout: float = CALL_TIMEOUT) -> Any:
    """Build ``factory(*args)`` in a child, run one method, stop the child."""
    iso = Isolated(factory, *args, label=label)
    try:
        return iso.call(method, *method_args, timeout=timeout)
    finally:
        iso.close()
