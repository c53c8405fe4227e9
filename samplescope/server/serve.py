"""``serve()``: run the app with uvicorn; the CLI's ``samplescope serve`` calls it."""

from __future__ import annotations

import logging
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

from samplescope.server.settings import DEFAULT_HOST, DEFAULT_PORT, Settings

log = logging.getLogger(__name__)


def serve(
    run_path: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    *,
    prewarm: bool = True,
    log_level: str = "warning",
    trust: bool = False,
    integration: str | None = None,
    device: str = "auto",
    on_ready: Callable[[str], None] | None = None,
    compare: str | Path | None = None,
) -> None:
    """Serve an analysed run until interrupted; prints the address once it listens.

    Raises ``SamplescopeError`` (before listening) when the run is missing or
    not analysed.
    """
    from samplescope.server.state import load_run, start_compute_worker

    settings = Settings(
        run_path=Path(run_path), host=host, port=port, prewarm=prewarm, trust=trust, integration=integration,
        device=device, compare=Path(compare) if compare is not None else None,
    )
    run = load_run(settings.run_path, trust=trust, integration=integration, device=device)  # type: ignore[arg-type]
    start_compute_worker(run, settings)  # a large run's: it starts while the web app is imported

    import uvicorn

    from samplescope.server.app import create_app

    app = create_app(run, settings)
    if not settings.is_loopback:
        # once: logged, not printed as well (the CLI's log handler and a print showed it twice);
        # with no logging set up, Python's last-resort handler still writes it to stderr
        log.warning(
            "WARNING: samplescope is listening on %s, which other machines can reach; the run's "
            "samples, labels and model outputs are readable by anyone who can connect",
            host,
        )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
            await super().startup(sockets)
            if self.should_exit or not self.servers:
                return
            bound = self.servers[0].sockets[0].getsockname()[1]
            url = Settings(host=host, port=int(bound)).url
            name = app.state.samplescope.run.name
            print(f"samplescope: serving run {name!r} at {url}", flush=True)
            if on_ready is not None:
                on_ready(url)
            if open_browser:
                threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    Server(config).run()
