"""Secrets out of every output: URL credentials masked, known secret values scrubbed.

Two layers, both applied where text leaves the process (log lines, error messages,
``check-config``, metric labels):

- ``redact_url``: a URL's userinfo (``user:pass@``) and the values of query keys that name
  a credential (``api_key``, ``token``, ``subscription-key``, ``password``, ...) become
  ``MASK``. The URL still says which host and path failed.
- ``scrub``: any text, with every URL in it redacted and every secret value the process
  has resolved (``register_secret``: config secrets, URL credentials, tokens an API issued)
  replaced by ``MASK``, so a secret echoed back by a server, quoted by a library's
  exception or carried in a header dump does not get out either.

A secret shorter than ``MIN_SECRET_LEN`` characters is not scrubbed by value (it would mask
every occurrence of a common word); URL redaction still covers it.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

MASK = "**********"
MIN_SECRET_LEN = 4

#: Query keys whose values are credentials: matched on the key lowercased with ``-`` and ``_``
#: removed, exactly or as a part (``x-api-key``, ``subscription-key``, ``access_token``).
_SECRET_KEY_PARTS = (
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "sig",
    "credential",
    "session",
    "jwt",
    "bearer",
    "code",
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


class _Registry:
    """The secret values resolved so far, and one regex that finds any of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None

    def rebuild(self) -> None:
        """Recompile the pattern (call with the lock held); longest first: no partial masks."""
        ordered = sorted(self.values, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


_registry = _Registry()


def is_secret_key(name: str) -> bool:
    """True if a query parameter called ``name`` carries a credential."""
    flat = name.lower().replace("-", "").replace("_", "")
    return any(part in flat for part in _SECRET_KEY_PARTS)


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret: ``scrub`` masks it wherever it appears from now on."""
    if value is None or len(value) < MIN_SECRET_LEN:
        return
    forms = _forms(value)
    with _registry.lock:
        if forms <= _registry.values:
            return
        _registry.values.update(forms)
        _registry.rebuild()


def forget_secret(value: str | None) -> None:
    """Stop masking ``value`` (a token replaced by a fresh one: the set stays bounded)."""
    if value is None:
        return
    with _registry.lock:
        _registry.values.difference_update(_forms(value))
        _registry.rebuild()


def _forms(value: str) -> set[str]:
    """``value`` as it is, and URL-encoded as a form or a query would carry it."""
    return {value, quote(value, safe=""), quote(value)}


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: the userinfo password (the user name when it stands
    alone, as a token does: ``https://TOKEN@host``) and the values of credential query keys."""
    try:
        parts = urlsplit(url)
        found = [parts.password or parts.username or ""] if "@" in parts.netloc else []
    except ValueError:
        return []
    found = [unquote(f) for f in found]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if is_secret_key(k)]
    return [f for f in found if f]


def register_url(url: str) -> str:
    """Register the credentials ``url`` carries (see ``url_secrets``); ``url`` unchanged.

    Userinfo is also registered as the ``Authorization: Basic`` value an HTTP client makes
    of it, so a server echoing the request's headers is masked too.
    """
    for value in url_secrets(url):
        register_secret(value)
    try:
        parts = urlsplit(url)
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            register_secret(base64.b64encode(pair.encode()).decode())
    except ValueError:
        pass
    return url


def redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-bearing query values replaced by ``MASK``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
        query = parts.query
        if query:
            query = "&".join(_redact_pair(pair) for pair in query.split("&"))
        fragment = MASK if parts.fragment and "=" in parts.fragment else parts.fragment
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:  # not parseable as a URL (a bad IPv6 literal): keep only the scheme
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme else MASK


def _redact_pair(pair: str) -> str:
    key, sep, _ = pair.partition("=")
    if sep and is_secret_key(unquote(key)):
        return f"{key}={MASK}"
    return pair


def scrub(text: str) -> str:
    """``text`` with every URL redacted and every registered secret masked."""
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    pattern = _registry.pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


def scrub_value(value: Any) -> Any:
    """``scrub`` applied to a string, or to the strings inside lists, tuples and dicts."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value


def registered_count() -> int:
    """How many secret forms are registered (for tests)."""
    with _registry.lock:
        return len(_registry.values)


def forget_all(values: Iterable[str] | None = None) -> None:
    """Forget registered secrets (``values``, or all): for tests that reuse a process."""
    with _registry.lock:
        if values is None:
            _registry.values.clear()
        else:
            _registry.values.difference_update(values)
        _registry.rebuild()
