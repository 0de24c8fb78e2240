"""The HTTP client under the tier client: one POST to an OpenAI-compatible server, its answer
read whole or line by line, with the failures the tier client tells apart (a timeout, whether
while connecting; a server that cannot be reached; an answer that broke off).

On the network this is aiohttp: the proxy pays the client's CPU on every call, and aiohttp's
is a fraction of httpx's (bench/upstream_client.py). A test that hands in an httpx transport
(httpx.MockTransport) gets the httpx client on it instead: the fast seam beside the tests that
run a real simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError

# One SSE line may carry a large chunk (a tool call's arguments): aiohttp refuses lines over
# twice its read buffer, so the buffer is sized for 2 MiB lines.
READ_BUFFER_BYTES = 1 << 20


class UpstreamError(Exception):
    """A call that got no usable answer; the message names what happened."""


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str, *, connect: bool) -> None:
        super().__init__(message)
        self.connect = connect  # nothing was sent yet, so a retry cannot repeat the request


class UpstreamUnreachable(UpstreamError):
    """No answer began: the server refused the connection or closed it before the status line."""


class UpstreamDropped(UpstreamError):
    """The answer began and broke off (the connection closed, a chunk was malformed)."""


class UpstreamResponse(Protocol):
    status: int

    async def body(self) -> bytes: ...

    def lines(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
                   connect_timeout_s: float) -> UpstreamResponse:
        """Send, and return once the status line and headers have arrived."""

    async def aclose(self) -> None: ...

    def release(self) -> None:
        """Without a running loop: let go of what belongs to loops that have ended."""


def _name(exc: BaseException) -> str:
    return type(exc).__name__


Errors = tuple[type[BaseException], ...]


@contextlib.contextmanager
def _broken_off(what: str, timeouts: Errors, drops: Errors) -> Iterator[None]:
    """A client's errors while an answer (`what`) is read, as the two ways it can break off."""
    try:
        yield
    except timeouts as exc:
        raise UpstreamTimeout(f"{what} stalled: {_name(exc)}", connect=False) from None
    except drops as exc:
        raise UpstreamDropped(f"{what} ended early: {_name(exc)}") from None


AIOHTTP_DROPS: Errors = (aiohttp.ClientError, HttpProcessingError)
HTTPX_DROPS: Errors = (httpx.TransportError, httpx.StreamError)


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    async def body(self) -> bytes:
        try:
            with _broken_off("answer", (TimeoutError,), AIOHTTP_DROPS):
                return await self._response.read()
        finally:
            self._response.release()

    async def lines(self) -> AsyncIterator[str]:
        with _broken_off("stream", (TimeoutError,), (*AIOHTTP_DROPS, ValueError)):  # ValueError: a line over the buffer
            async for raw in self._response.content:
                yield raw.decode("utf-8", "replace").rstrip("\r\n")

    async def aclose(self) -> None:
        # An answer read to its end returns its connection to the pool; an unfinished one closes it.
        self._response.release()


class AiohttpUpstream:
    """One aiohttp session per event loop, created on first use: a session cannot move between
    loops, and the console's and the tests' loops come and go."""

    def __init__(self, *, max_connections: int = 512) -> None:
        self.max_connections = max_connections
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _current(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            self.release()
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300)
            # HTTP(S)_PROXY and NO_PROXY are honoured, as httpx did; aiohttp reads them on every
            # request when asked to, so it is asked only where one is set.
            proxied = bool({"http", "https"} & set(urllib.request.getproxies()))
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=connector, read_bufsize=READ_BUFFER_BYTES, auto_decompress=True, trust_env=proxied)
        return session

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
                   connect_timeout_s: float) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=timeout_s)
        try:
            response = await self._current().post(url, data=body, headers=headers, timeout=timeout)
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamTimeout(f"no connection within {connect_timeout_s:g}s: {_name(exc)}", connect=True) from None
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:g}s: {_name(exc)}", connect=False) from None
        except AIOHTTP_DROPS as exc:
            raise UpstreamUnreachable(_name(exc)) from None
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        """Close this loop's session; those of loops that have ended are let go."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
        self.release()

    def release(self) -> None:
        """Let go of the sessions of loops that have ended (a server thread that has stopped)."""
        for dead in [loop for loop in self._sessions if loop.is_closed()]:
            _abandon(self._sessions.pop(dead))


def _abandon(session: aiohttp.ClientSession) -> None:
    """A session whose event loop has ended: its sockets ended with the loop, so mark it closed
    rather than have it reported as leaked. aiohttp closes connectors only from their loop; its
    synchronous `_close` is what that does once the loop is gone."""
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code

    async def body(self) -> bytes:
        try:
            with _broken_off("answer", (httpx.TimeoutException,), HTTPX_DROPS):
                return await self._response.aread()
        finally:
            await self._response.aclose()

    async def lines(self) -> AsyncIterator[str]:
        with _broken_off("stream", (httpx.TimeoutException,), HTTPX_DROPS):
            async for line in self._response.aiter_lines():
                yield line

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstream:
    """httpx on a given transport: httpx.MockTransport in the unit tests."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(60.0))

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
                   connect_timeout_s: float) -> UpstreamResponse:
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        request = self._client.build_request("POST", url, content=body, headers=headers,
                                             extensions={"timeout": timeout.as_dict()})
        try:
            response = await self._client.send(request, stream=True)
        except httpx.ConnectTimeout as exc:
            raise UpstreamTimeout(f"no connection within {connect_timeout_s:g}s: {_name(exc)}", connect=True) from None
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:g}s: {_name(exc)}", connect=False) from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(_name(exc)) from None
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()

    def release(self) -> None:
        pass  # the transport holds no sockets of a loop
