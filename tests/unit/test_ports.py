"""The loopback ports the project's processes are started on (devtools.ports)."""

from __future__ import annotations

import socket

import pytest

from devtools import ports


def test_ports_of_one_call_are_distinct_free_and_outside_the_ephemeral_range():
    chosen = ports.free_ports(64)
    assert len(set(chosen)) == 64
    low = ports._ephemeral_start()
    assert all(ports.BAND_START <= p < low for p in chosen)
    for p in chosen:  # each one can be listened on once released
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_never_chosen(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(ports.random, "randrange", lambda n: port - ports.BAND_START)
        chosen = ports.free_ports(3)  # probing starts at the port in use
    assert port not in chosen and len(set(chosen)) == 3


@pytest.mark.parametrize("ephemeral_start", [1024, ports.BAND_START + ports.BAND_MIN - 1])
def test_without_a_band_below_the_ephemeral_range_the_kernel_chooses(monkeypatch, ephemeral_start):
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: ephemeral_start)
    chosen = ports.free_ports(8)
    assert len(set(chosen)) == 8
    assert all(p >= ephemeral_start for p in chosen)
