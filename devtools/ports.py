"""Free loopback ports for the processes the project starts (control plane, operator, gateway,
forwarder, Redis, stand-in models).

A port is chosen by binding to it and then released for the process that will listen there. Two
things can take it in between:

- the kernel hands out the same port again: ``bind(("127.0.0.1", 0))`` twice in a row may return
  one port twice (in a parallel test run, etcd's peer port and kwok's once met and kwok exited).
  ``free_ports(n)`` holds every socket until all ``n`` are chosen, so they are distinct;
- an outgoing connection of any process takes it as its local port. Ports are therefore chosen
  below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``), which connections never
  use, starting at a random place of that band so parallel processes rarely probe the same ports.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

#: The lowest port handed out: above the registered services most hosts run.
BAND_START = 20000
#: Below this many ports between BAND_START and the ephemeral range, the kernel chooses.
BAND_MIN = 1000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bound(port: int) -> socket.socket | None:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports nobody listens on, outside the ephemeral range."""
    band = range(BAND_START, _ephemeral_start())
    held: list[socket.socket] = []
    try:
        if len(band) >= BAND_MIN:
            start = random.randrange(len(band))
            for i in range(len(band)):
                s = _bound(band[(start + i) % len(band)])
                if s is not None:
                    held.append(s)
                    if len(held) == n:
                        break
        while len(held) < n:  # no band (or it is full): the kernel's choice, still distinct
            s = _bound(0)
            if s is None:
                raise OSError("no free loopback port")
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            with contextlib.suppress(OSError):
                s.close()


def free_port() -> int:
    """One free loopback port (see ``free_ports``)."""
    return free_ports(1)[0]
