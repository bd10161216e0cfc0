"""Where an endpoint answers: its Service, by cluster DNS.

Every endpoint the operator renders has a Service named after its owner (the template, Model
or ModelDeployment) on port 80, in front of the forwarder of each ready worker. In a cluster the
gateway calls ``http://<name>.<namespace>.svc:80``.

The one seam for a control plane whose pods run nothing (kwok's fake nodes): an addresses file
(``--endpoint-addresses``), a JSON object ``{"<namespace>/<name>": "http://host:port"}``, read
again when it changes (looked at twice a second at most), whose entries take the place of the DNS names. Tests and the demo
write it for the forwarder processes they start; a cluster leaves it unset.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from .. import contract as c

__all__ = ["Endpoints"]

#: How often the addresses file is looked at again (at most).
CHECK_SECONDS = 0.5

log = logging.getLogger("modeltemplate_operator.gateway")


class Endpoints:
    def __init__(self, addresses_file: str | os.PathLike | None = None):
        self._file = Path(addresses_file) if addresses_file else None
        self._stamp: tuple[int, int] | None = None
        self._table: dict[str, str] = {}
        self._checked = 0.0

    def _addresses(self) -> dict[str, str]:
        if self._file is None:
            return {}
        now = time.monotonic()
        if now - self._checked < CHECK_SECONDS:
            return self._table
        self._checked = now
        try:
            stat = self._file.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                table = json.loads(self._file.read_text())
                self._table = {str(k): str(v) for k, v in table.items()}
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("endpoint addresses %s unreadable: %s", self._file, exc)
            self._stamp = stamp
        return self._table

    def url(self, namespace: str, name: str) -> str:
        """The base URL of the endpoint ``namespace/name`` (its forwarder's Service)."""
        override = self._addresses().get(f"{namespace}/{name}")
        if override:
            return override.rstrip("/")
        return f"http://{name}.{namespace}.svc:{c.SERVICE_PORT}"
