"""Outbound HTTP over ``wasi:http``, synchronous, as the Rust SDK's client.

Every request is checked by the host against the agent's allowlist before
any connection is made; a host off the list fails with :class:`HttpError`
whose ``reason`` is ``"denied"`` (and the call, left uncaught, with
``CAPABILITY_DENIED``)::

    from orchestr8_agent import http

    response = http.get("https://api.github.com/repos/rust-lang/rust",
                        headers={"user-agent": "my-agent"}).raise_for_status()
    stars = response.json()["stargazers_count"]

``process`` is a synchronous export, so this is a small blocking client
rather than ``urllib`` or ``asyncio`` (neither reaches ``wasi:http``).
"""

from __future__ import annotations

import json as _json
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from . import _wit
from .errors import AgentError

__all__ = ["HttpError", "Response", "get", "post", "request"]

#: Largest response body read unless asked otherwise.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Largest chunk a WASI output stream accepts in one blocking write.
_WRITE_CHUNK = 4096


class HttpError(AgentError):
    """A request that produced no response. ``reason`` is ``"denied"``
    (not on the allowlist), ``"invalid-url"``, ``"transport"`` (connecting,
    sending or receiving failed: retryable), ``"body-too-large"`` or
    ``"decode"`` (the body is not the expected JSON)."""

    def __init__(self, reason: str, message: str) -> None:
        kind = self.RETRYABLE if reason == "transport" else self.FATAL
        super().__init__(kind, message)
        self.reason = reason


class Response:
    """A complete response: ``status``, ``headers`` (names lower-case) and
    ``body`` (bytes)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise HttpError("decode", f"response is not the expected JSON: {e}") from None

    def raise_for_status(self) -> Response:
        """This response if it succeeded; else an :class:`AgentError`:
        retryable for 408, 429 and 5xx (with ``Retry-After`` when given),
        fatal for the rest."""
        if self.ok:
            return self
        message = f"the server answered {self.status}: {self.text()[:200]}"
        if self.status in (408, 429) or self.status >= 500:
            retry_after = self.headers.get("retry-after", "")
            delay = int(retry_after) * 1000 if retry_after.isdigit() else None
            raise AgentError.retryable(message, retry_after_ms=delay)
        raise AgentError.fatal(message)


def get(url: str, **kwargs: Any) -> Response:
    """``GET url``; see :func:`request` for the keyword arguments."""
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    """``POST url``; see :func:`request` for the keyword arguments."""
    return request("POST", url, **kwargs)


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    json: Any = None,
    body: bytes | str | None = None,
    timeout: float | None = None,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Response:
    """Sends one request and reads the whole response.

    ``params`` are appended as a query string; ``json`` is sent as the body
    with ``content-type: application/json``; ``timeout`` (seconds) bounds
    connecting and the first byte of the answer (the invocation's own
    deadline bounds everything anyway).
    """
    Err, t = _wit.Err, _wit.http_types
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError("invalid-url", f"invalid URL: {url!r} (need http:// or https:// and a host)")
    path = parts.path or "/"
    query = parts.query
    if params:
        # Everything but RFC 3986's unreserved characters percent-encoded, as
        # the Rust and TypeScript SDKs do, so recorded fixtures match.
        encoded = urlencode(params, quote_via=quote, safe="")
        query = f"{query}&{encoded}" if query else encoded
    if query:
        path = f"{path}?{query}"
    fields = dict(headers or {})
    payload = b""
    if json is not None:
        payload = _json.dumps(json).encode()
        fields.setdefault("content-type", "application/json")
    elif body is not None:
        payload = body.encode() if isinstance(body, str) else bytes(body)

    def failed(code: Any) -> HttpError:
        if isinstance(code, t.ErrorCode_HttpRequestDenied):
            return HttpError(
                "denied",
                f"request to {url} was denied: the host is not on the agent's allowlist",
            )
        return HttpError("transport", f"HTTP request to {url} failed: {type(code).__name__}")

    try:
        entries = [(k.lower(), v.encode()) for k, v in fields.items()]
        outgoing = t.OutgoingRequest(t.Fields.from_list(entries))
    except Err as e:
        raise HttpError("invalid-url", f"bad header for {url}: {e.value}") from None
    try:
        outgoing.set_method(_method(t, method))
        outgoing.set_scheme(t.Scheme_Https() if parts.scheme == "https" else t.Scheme_Http())
        outgoing.set_authority(parts.netloc)
        outgoing.set_path_with_query(path)
    except Err:
        raise HttpError("invalid-url", f"invalid URL: {url!r}") from None
    options = None
    if timeout is not None:
        options = t.RequestOptions()
        nanos = int(timeout * 1e9)
        options.set_connect_timeout(nanos)
        options.set_first_byte_timeout(nanos)
    outgoing_body = outgoing.body()
    try:
        pending = _wit.outgoing_handler.handle(outgoing, options)
    except Err as e:
        raise failed(e.value) from None
    try:
        with outgoing_body.write() as stream:
            for start in range(0, len(payload), _WRITE_CHUNK):
                stream.blocking_write_and_flush(payload[start : start + _WRITE_CHUNK])
        t.OutgoingBody.finish(outgoing_body, None)
    except Err as e:
        raise failed(e.value) from None

    with pending.subscribe() as ready:
        ready.block()
    got = pending.get()
    if got is None or isinstance(got, Err):
        raise HttpError("transport", f"HTTP request to {url} failed: no response")
    if isinstance(got.value, Err):
        raise failed(got.value.value)
    response = got.value.value
    status = response.status()
    with response.headers() as h:
        answer_headers = {k.lower(): v.decode("latin-1") for k, v in h.entries()}
    data = bytearray()
    incoming = response.consume()
    with incoming.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(64 * 1024)
            except Err as e:
                if isinstance(e.value, _wit.streams.StreamError_Closed):
                    break
                raise HttpError("transport", f"reading the response of {url} failed") from None
            if len(data) + len(chunk) > max_response_bytes:
                raise HttpError("body-too-large", f"response body exceeds {max_response_bytes} bytes")
            data.extend(chunk)
    return Response(status, answer_headers, bytes(data))


def _method(t: Any, method: str) -> Any:
    known = {
        "GET": t.Method_Get,
        "HEAD": t.Method_Head,
        "POST": t.Method_Post,
        "PUT": t.Method_Put,
        "DELETE": t.Method_Delete,
        "OPTIONS": t.Method_Options,
        "PATCH": t.Method_Patch,
    }
    upper = method.upper()
    return known[upper]() if upper in known else t.Method_Other(upper)
