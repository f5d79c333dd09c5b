"""SIGINT and SIGTERM during a command: exceptions that clean up temporary files.

Python turns a signal into an exception in whichever Python code runs next.
When that is a garbage-collector callback or a ``__del__``, Python prints
the exception and drops it, so the command would go on with a traceback on
stderr. The handler therefore records the signal, raises only outside such
code, and :func:`raise_pending` raises it at the next safe point (after each
written block).
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
from collections.abc import Iterator

_pending: list[int] = []


class Terminated(Exception):
    """Raised for SIGTERM so that temporary files are removed on the way out."""


def _exception_for(signum: int) -> BaseException:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _in_dropped_context(frame) -> bool:
    """Return whether ``frame`` runs inside a garbage-collector callback or a ``__del__``.

    Python prints and drops an exception raised there, so the handler only
    records the signal and :func:`raise_pending` raises it later.
    """
    callback_codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in callback_codes or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _handle(signum, frame) -> None:
    _pending.append(signum)
    if not _in_dropped_context(frame):
        raise _exception_for(signum)


def raise_pending() -> None:
    """Raise the exception of a signal that arrived but was not acted on."""
    if _pending:
        raise _exception_for(_pending[0])


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Install the handlers while a command runs, then restore the old ones.

    SIGINT is handled only where Python's own handler is in place, so a
    SIGINT that the caller ignores stays ignored. Handlers can only be set
    from the main thread, so elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending.clear()
    previous_term = signal.signal(signal.SIGTERM, _handle)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handle)
    try:
        yield
        raise_pending()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        _pending.clear()
