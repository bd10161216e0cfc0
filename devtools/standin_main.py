"""A stand-in ``main`` (model container) as its own process, for the async forwarder's tests, the
demo and ``make bench-async``: ``POST /predict`` (``--predict-route``) answers ``{"echo": <body>}`` after ``--delay``
seconds (``{"status": N}`` in the body makes it answer with that status). It counts what it
sees: ``GET /stats`` gives calls per ``n`` of the body (duplicates), the highest concurrency
seen, and calls in total; ``POST /control`` sets ``healthy`` and ``delay``.

    python -m devtools.standin_main --port 5005 --delay 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiohttp import web


class StandIn:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.healthy = True
        self.active = 0
        self.max_active = 0
        self.total = 0
        self.by_n: dict[str, int] = {}
        self.first_at = 0.0  # wall clock of the first call's arrival, and the last one's answer
        self.last_at = 0.0

    async def predict(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.total += 1
        if not self.first_at:
            self.first_at = time.time()
        if isinstance(body, dict) and "n" in body:
            key = str(body["n"])
            self.by_n[key] = self.by_n.get(key, 0) + 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
            self.last_at = time.time()
        status = body.get("status", 200) if isinstance(body, dict) else 200
        return web.json_response({"echo": body}, status=status)

    async def readyz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": self.healthy}, status=200 if self.healthy else 503)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "active": self.active,
                "max_active": self.max_active,
                "total": self.total,
                "by_n": self.by_n,
                "first_at": self.first_at,
                "last_at": self.last_at,
            }
        )

    async def control(self, request: web.Request) -> web.Response:
        doc = await request.json()
        if "healthy" in doc:
            self.healthy = bool(doc["healthy"])
        if "delay" in doc:
            self.delay = float(doc["delay"])
        if doc.get("reset"):
            self.max_active = self.total = 0
            self.first_at = self.last_at = 0.0
            self.by_n.clear()
        return web.json_response({"healthy": self.healthy, "delay": self.delay})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5005)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--unhealthy", action="store_true")
    parser.add_argument("--predict-route", default="/predict")
    args = parser.parse_args()
    s = StandIn(args.delay)
    s.healthy = not args.unhealthy
    app = web.Application()
    app.router.add_post(args.predict_route, s.predict)
    app.router.add_get("/readyz", s.readyz)
    app.router.add_get("/stats", s.stats)
    app.router.add_post("/control", s.control)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
