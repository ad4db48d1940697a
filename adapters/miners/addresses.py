"""Miner addresses as operators write them: single, ``FIRST-LAST`` ranges and CIDR blocks."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

#: A spec expanding to more addresses than this is a typo, not a site (a /16 is 65,536).
MAX_ADDRESSES = 65_536


class AddressError(ValueError):
    """A miner address spec that cannot be used."""


def expand(spec: str) -> list[str]:
    """One spec to its IPv4 addresses, in order; CIDR blocks leave out network and broadcast."""
    text = spec.strip()
    try:
        if "/" in text:
            net = ipaddress.IPv4Network(text, strict=False)
            if net.num_addresses > MAX_ADDRESSES:
                raise AddressError(f"{spec!r}: more than {MAX_ADDRESSES} addresses")
            return [str(ip) for ip in (net.hosts() if net.prefixlen < 31 else net)]
        if "-" in text:
            first_text, last_text = (part.strip() for part in text.split("-", 1))
            first = ipaddress.IPv4Address(first_text)
            last = ipaddress.IPv4Address(last_text)
            if last < first:
                raise AddressError(f"{spec!r}: range ends before it starts")
            count = int(last) - int(first) + 1
            if count > MAX_ADDRESSES:
                raise AddressError(f"{spec!r}: {count} addresses, more than {MAX_ADDRESSES}")
            return [str(first + i) for i in range(count)]
        return [str(ipaddress.IPv4Address(text))]
    except ipaddress.AddressValueError as exc:
        raise AddressError(f"{spec!r}: {exc}") from None
    except ValueError as exc:
        if isinstance(exc, AddressError):
            raise
        raise AddressError(f"{spec!r}: {exc}") from None


def expand_all(specs: Iterable[str]) -> list[str]:
    """Several specs to their addresses; an address named twice is an error."""
    out: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        for ip in expand(spec):
            if ip in seen:
                raise AddressError(f"{ip} is listed more than once")
            seen.add(ip)
            out.append(ip)
    if len(out) > MAX_ADDRESSES:
        raise AddressError(f"{len(out)} addresses, more than {MAX_ADDRESSES}")
    return out
