"""The C allocator under the operator: fewer glibc arenas, and free memory handed back at rest.

glibc gives each thread that allocates an arena of its own (up to 8 per core); with a pool of
reconcile threads that is memory held per thread. Two arenas are enough for an I/O-bound
process (``MALLOC_ARENA_MAX`` in the environment still wins). After a burst (a resync, a GitOps
sync of hundreds of templates) the freed memory stays in the heap until ``malloc_trim`` gives
it back; the runtime calls :func:`trim` when its queue goes idle. No-ops off glibc.
"""

from __future__ import annotations

import ctypes
import gc
import os

ARENAS = 2
M_ARENA_MAX = -8  # mallopt parameter number, <malloc.h>


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def limit_arenas() -> None:
    """Cap glibc's malloc arenas; call before any thread starts."""
    libc = _libc()
    if libc is not None and not os.environ.get("MALLOC_ARENA_MAX"):
        libc.mallopt(M_ARENA_MAX, ARENAS)


def trim() -> None:
    """Collect garbage and give the heap's free memory back to the system."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
