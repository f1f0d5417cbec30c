"""Let every WebSocket session finish on SIGTERM, within daphne's ``--application-close-timeout``.

daphne's ``Server.kill_all_applications`` cancels every application and waits for
``asyncio.gather(*instances)``: without ``return_exceptions`` the gather ends as soon as
the first instance ends with ``CancelledError``, so the reactor stopped while the other
sessions were still storing their last utterance (their clients saw 1006, not 1012).  The
replacement waits for all of them, up to the close timeout the operator configured.
"""

from __future__ import annotations

import asyncio
import logging

from streaming.web import shutdown

logger = logging.getLogger(__name__)


def wait_for_every_application() -> None:
    """Patch daphne's shutdown wait once; a no-op where daphne is not installed."""
    try:
        from daphne.server import Server
        from twisted.internet import defer
    except ImportError:
        return
    if getattr(Server, "_waits_for_every_application", False):
        return

    def kill_all_applications(self):
        shutdown.begin_draining()  # sessions that connect from now on are sent elsewhere
        instances = [
            details["application_instance"]
            for details in self.connections.values()
            if details.get("application_instance") is not None and not details["application_instance"].done()
        ]
        for instance in instances:
            instance.cancel()
        logger.info("Cancelled %i application instances; waiting for them to finish", len(instances))
        if not instances:
            return None
        finished = _wait_all(instances, self.application_close_timeout)
        return defer.Deferred.fromFuture(asyncio.ensure_future(finished))

    Server.kill_all_applications = kill_all_applications
    Server._waits_for_every_application = True


async def _wait_all(instances: list[asyncio.Future], timeout: float) -> None:
    _, pending = await asyncio.wait(instances, timeout=timeout)
    if pending:
        logger.warning(
            "%i application instances did not finish within the %g s close timeout", len(pending), timeout
        )
