"""A worker's shutdown: its own sessions are told and finalized, and it takes no new ones.

daphne cancels every consumer of the worker that got SIGTERM (``voicesite/daphne_shutdown.py``
waits for all of them); each open session then says ``SHUTTING_DOWN``, stores its utterance in
progress and closes with 1012 (``streaming/web/consumer.py``), and its client reconnects, through
the proxy, to a worker that stays.  Other workers' sessions are not disturbed, so a rolling
restart moves each client once, not once per worker; stopping the whole service signals every
worker.
"""

from __future__ import annotations

_draining = False


def begin_draining() -> None:
    """This worker process is stopping (daphne began cancelling its sessions on SIGTERM)."""
    global _draining
    _draining = True


def draining() -> bool:
    """True once this worker is stopping.

    It still accepts connections while it waits for its sessions to finish, but one opened now
    would be cut off, unfinalized, when the process exits: the consumer refuses it with
    ``SHUTTING_DOWN`` and 1012, and the client reconnects (through the proxy) to a worker that stays.
    """
    return _draining
