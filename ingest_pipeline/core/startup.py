"""Start-up of the pipeline's processes: the cyclic garbage collector while their modules load.

Dagster, polars, pandera and DuckDB leave ~200k long-lived objects behind their imports, and the
cyclic collector walks every one of them on each full collection: while they load it collects
again and again (about 1 s of a 1,000-row upload's start-up went into it), and each collection
afterwards pays for them again. So the collector is paused while a process imports them, and what
is loaded then is frozen (`gc.freeze`): later collections, and the interpreter's exit, skip it.
"""

import contextlib
import gc
from collections.abc import Iterator

_frozen = False


def modules_loaded() -> None:
    """The process has imported what it needs: freeze it (the first time only, so that what later
    work leaves behind stays collectable) and let the collector run again."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True
    gc.enable()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the collector while the block imports modules, then `modules_loaded()`. Inside a caller
    that has paused it already (the command line), this leaves the resuming to that caller."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        modules_loaded()
