"""The C allocator's behaviour for large buffers, set once at process start.

Request bodies are ``bytearray`` objects that grow as the body arrives (never preallocated from
``Content-Length``: a client that announces 16 MiB and sends nothing must not hold 16 MiB).
glibc's malloc serves a large block from ``mmap`` until a block of that size is freed, then
raises its mmap threshold (up to 32 MiB) and serves the next ones from the heap: there, growing a
body copies it (old and new block both resident for a moment), and the freed blocks stay in the
process's RSS. Measured: two 16 MiB bodies at once after earlier large bodies peaked at 93 MB
(idle 40 MB); with a fixed threshold, 74 MB, and memory is returned as each body is done.

A fixed ``M_MMAP_THRESHOLD`` keeps every block from :data:`MMAP_THRESHOLD` up in its own mapping:
growing it is ``mremap`` (no copy), freeing it unmaps it. Elsewhere than glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("modeltemplate_operator.forwarder")

#: Blocks of at least this size get their own mapping (glibc's default starts at 128 KiB and
#: moves; the body reads are 64 KiB slices, below it).
MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold (also stops it moving); whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        # musl has no mallopt that does anything; gnu_get_libc_version names glibc.
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError elsewhere than glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    if not ok:
        log.warning(
            "mallopt(M_MMAP_THRESHOLD, %d) failed: large bodies may stay resident", threshold
        )
    return ok
