"""Start an aiohttp app on a free loopback port: the fake peers (Zalo OA, a provincial
case system) serve the same way."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1",
                **runner_options: Any) -> tuple[web.AppRunner, int]:
    """Serve `app` on `host` and a port the OS picks; (runner to clean up, port).

    A short shutdown by default: a handler still sleeping on a deliberate delay must not
    hold up the test that stops the fake."""
    runner_options.setdefault("shutdown_timeout", 0.1)
    runner = web.AppRunner(app, handle_signals=False, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
