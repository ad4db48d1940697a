"""What an HTTP feed error may say: status, a short reason of our own, an API's error code.

Never the response body's text or the client exception's text: either may echo the request
(its ``Authorization`` header, its query string). URLs are redacted by the caller.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus

import aiohttp

from controller.runtime.redact import scrub

_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{1,63}")


def status_text(code: int) -> str:
    """``401 Unauthorized``: the code and its standard phrase (not the server's own text)."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def error_code(body: bytes) -> str | None:
    """An API's error codes from a JSON error body, or None.

    B2C answers ``{"error": "access_denied", "error_description": "AADB2C90225: ..."}``:
    that is ``access_denied, AADB2C90225``. Only identifiers before any ``:``, never free
    text: a body may echo the request.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    codes: list[str] = []
    for key in ("error", "error_description", "error_code", "code"):
        value = doc.get(key)
        if isinstance(value, str):
            head = value.split(":", 1)[0].strip()
            if _ERROR_CODE.fullmatch(head) and head not in codes:
                codes.append(scrub(head))
    return ", ".join(codes[:2]) or None


def client_error_reason(exc: aiohttp.ClientError) -> str:
    """A short reason for a client error, without its text (which may quote the request)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate does not verify"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response ({status_text(exc.status)})" if exc.status else "bad response"
    return type(exc).__name__
