"""The front door: the short road (`mcp.fastcalls`) served before the layers of Starlette's
stack that a plain send or wait does not need.

Every request to the HTTP server passes, before any route: Starlette's error middleware,
FastMCP's request context and its Host/Origin guard, then ours (body bounds, reply tracking,
channel stream taps, token checks) to `FastCalls`. On a plain send or wait, those layers took
about a tenth of the server's CPU (py-spy, benchmarks.cpu F on 2026-07-28), wrapping the
request's receive and send in a closure each and, in the guard, parsing the Host and the
server's address anew on every request.

`FrontDoor` sits in front of all of them and hands `FastCalls` the requests it may serve
there (`FastCalls.at_door`): a candidate for the road, on a server without tokens, whose gate
(the Host and Origin headers, scheme and address the guard decides on) an earlier request
already passed the guard with (`FastCalls` notes each gate it sees, from inside the guard).
What those layers do for such a request, the door does itself: it reads the body within the
same bounds (`RequestBounds.read`: 413 and 408 as before) and tracks the reply
(`replies.replying`). FastMCP's request context is not needed on the road (its tools read no
HTTP request), and an error is answered by uvicorn as Starlette would (a 500).

Everything else goes through the whole stack, untouched: a request of a gate not yet seen (so
the guard decides on it: a Host or Origin it refuses is never learnt), anything not a
candidate, and every request to a server with tokens (whose check happens in the stack).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_chat.bounds import RequestBounds, replay
from mcp_chat.mcp.fastcalls import DECLINED, FastCalls
from mcp_chat.mcp.replies import replying


class FrontDoor:
    """ASGI app: `stack`, with the requests `fast` may serve at the door served first."""

    def __init__(self, stack: ASGIApp, fast: FastCalls, bounds: RequestBounds) -> None:
        """`bounds`: the body bounds of the stack's `RequestBounds` (only its `read` is used)."""
        self.stack, self.fast, self.bounds = stack, fast, bounds
        self.served = 0
        """Requests taken at the door (for tests)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        family = self.fast.at_door(scope)
        if family is None:
            await self.stack(scope, receive, send)
            return
        body = await self.bounds.read(scope, receive, send)
        if body is None:
            return  # refused by the bounds, or the client hung up
        self.served += 1
        # Declined here (not a plain call after all), it is not looked at again in the stack.
        scope[DECLINED] = True
        with replying(send) as tracked:
            await self.fast.take(family, scope, replay(body, receive), tracked, self.stack)
