"""HTTP digest authentication (RFC 7616, MD5, qop=auth) as the Antminer web UI does it."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def parse_header(value: str) -> dict[str, str]:
    """The key=value pairs of an ``Authorization: Digest ...`` header ({} if not digest)."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "digest":
        return {}
    out: dict[str, str] = {}
    for part in _split(rest):
        key, sep, val = part.strip().partition("=")
        if sep:
            out[key.strip().lower()] = val.strip().strip('"')
    return out


def _split(text: str) -> list[str]:
    """Split on commas that are not inside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


class DigestRealm:
    """One realm with one user; issues nonces and checks responses."""

    def __init__(self, realm: str, username: str, password: str) -> None:
        self.realm = realm
        self._username = username
        self._ha1 = _md5(f"{username}:{realm}:{password}")
        self._secret = secrets.token_bytes(16)

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` header value for a 401."""
        salt = secrets.token_hex(8)
        sig = hmac.new(self._secret, salt.encode(), "sha256").hexdigest()[:16]
        return f'Digest realm="{self.realm}", nonce="{salt}{sig}", qop="auth"'

    def _nonce_ok(self, nonce: str) -> bool:
        salt, sig = nonce[:16], nonce[16:]
        expected = hmac.new(self._secret, salt.encode(), "sha256").hexdigest()[:16]
        return hmac.compare_digest(sig, expected)

    def verify(self, method: str, header: str | None) -> bool:
        """True if the Authorization header proves the password for this request."""
        fields = parse_header(header or "")
        needed = ("username", "realm", "nonce", "uri", "response")
        if not all(k in fields for k in needed):
            return False
        if fields["username"] != self._username or fields["realm"] != self.realm:
            return False
        if not self._nonce_ok(fields["nonce"]):
            return False
        ha2 = _md5(f"{method}:{fields['uri']}")
        if fields.get("qop") == "auth":
            expected = _md5(
                f"{self._ha1}:{fields['nonce']}:{fields.get('nc', '')}:"
                f"{fields.get('cnonce', '')}:auth:{ha2}"
            )
        else:
            expected = _md5(f"{self._ha1}:{fields['nonce']}:{ha2}")
        return hmac.compare_digest(expected, fields["response"])
