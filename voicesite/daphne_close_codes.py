"""Let daphne send the registered close codes 1001, 1011, 1012 and 1013.

Autobahn's ``sendClose`` only accepts 1000 and 3000-4999, but RFC 6455 and the
IANA registry define 1012 (Service Restart), which a shutting-down server must
send so clients know to reconnect.  ``sendCloseFrame`` is the same call without
that check.
"""

from __future__ import annotations

SERVER_CLOSE_CODES = {1001, 1011, 1012, 1013}


def allow_server_close_codes() -> None:
    """Patch daphne's WebSocket protocol once; a no-op where daphne is not installed."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(WebSocketProtocol, "_server_close_codes_allowed", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self, code=None):
        if code in SERVER_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code)

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol._server_close_codes_allowed = True
