"""Process memory: fewer glibc malloc arenas for the pipeline's threads.

glibc gives each thread that allocates concurrently its own heap ("arena"), up to eight per core.
Memory freed into one arena is not reused by the others, and an arena gives pages back to the
system only from its top. The graph's steps run a bulk-load thread beside the step, and ConnectorX
reads with its own native threads; at 5M customers the run's peak RSS then moved between 3.5 and
4.5 GB from one run to the next on the same code, with the same data (`bench/RESULTS.md`). With two
arenas it was 3.0 GB. Same effect as ``MALLOC_ARENA_MAX=2`` in the environment, but set by the code
itself, so every launcher (``make run``, ``dagster dev``, the daemon's run workers, the benchmark)
gets it: :func:`limit_malloc_arenas` runs when the code location is loaded, before any step thread
exists.

``CHURN_MALLOC_ARENA_MAX``: the number of arenas (default 2); 0 leaves glibc's default. A C library
without ``mallopt`` (musl, macOS) is left as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from churn_pipeline.settings import int_env

log = logging.getLogger(__name__)

ARENA_MAX_ENV = "CHURN_MALLOC_ARENA_MAX"
DEFAULT_ARENA_MAX = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def arena_max_from_env() -> int:
    """``CHURN_MALLOC_ARENA_MAX`` if set (0 or more; 0 leaves glibc's default), else 2."""
    return int_env(ARENA_MAX_ENV, DEFAULT_ARENA_MAX, minimum=0)


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (default: ``CHURN_MALLOC_ARENA_MAX``, else 2).

    Returns whether the cap was set. Affects threads that start allocating afterwards."""
    arenas = arena_max_from_env() if arenas is None else arenas
    if arenas == 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        libc = None
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):  # M_ARENA_MAX is glibc's
        log.debug("not glibc: malloc arenas left as they are")
        return False
    return bool(libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas)))
