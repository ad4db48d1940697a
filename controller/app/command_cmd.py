"""``hashspark command CONFIG --site ID '<json>'``: send an operator command and wait for its ack.

The same path as any other client: the command goes to ``<prefix>/<site>/command`` on the
site's broker and the daemon's answer comes back on ``.../command/ack``.

``--list`` sends ``{"command": "list"}`` and prints the commands in force from its ack. The
question goes the way every command goes, and its answer comes back on the ack topic, matched
by id: no new topic to secure in the broker's ACL, no retained state that outlives the daemon
or goes stale, and the answer is the book as it is after every command sent before it (QoS 1
keeps one client's messages in order).

A site with issuers (``[sites.commands.issuers]``) takes only signed commands: ``--issuer``
names who signs, with the key from ``--key-file`` or else from the config. An operator's own
config (their broker user, no daemon secrets) need not list the issuers: ``--key-file``
alone turns signing on. The command gets
``issued_by`` and ``issued_at`` (now) and goes out in the signed envelope
(``adapters/control/auth.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from adapters.control.auth import sign
from adapters.mqtt_client import make_client
from controller.app.cli_support import positive
from controller.config import ConfigError, SiteConfig, load_config

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_NO_ANSWER = 0, 2, 3, 4


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``hashspark command``."""
    p = sub.add_parser(
        "command",
        help="send an operator or grid command to a running daemon over MQTT",
        description="Commands: force_curtail {until}, force_resume {until}, demand_response "
        "{max_mw, deadline, end}, peak_window {start, end}, base_point {mw, tolerance_mw, until}, "
        "clear {target: an id or a kind}, list; see docs/feeds.md.",
    )
    p.add_argument("config", type=Path, help="the daemon's config (for the site's broker)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "payload",
        nargs="?",
        help='the command as JSON, e.g. \'{"command": "force_curtail", "until": "..."}\'',
    )
    what.add_argument(
        "--list",
        action="store_true",
        help="print the active and scheduled commands (id, kind, issuer, times, cap)",
    )
    p.add_argument("--site", help="site id, when the config has several")
    p.add_argument(
        "--issuer",
        help="who issues it (issued_by); on a site with issuers, the one whose key signs",
    )
    p.add_argument(
        "--key-file",
        type=Path,
        help="the issuer's HMAC key (default: the issuer's key in the config)",
    )
    p.add_argument("--timeout", type=positive, default=10.0, help="seconds to wait for the ack")


def run(args: argparse.Namespace) -> int:
    """Publish and print the ack; exit 0 accepted, 3 rejected or duplicate, 4 no answer."""
    cfg = load_config(args.config).config
    sites = [s for s in cfg.sites if args.site in (None, s.id)]
    if len(sites) != 1:
        raise ConfigError(
            [f"{args.config}: choose one site with --site ({', '.join(s.id for s in cfg.sites)})"]
        )
    site = sites[0]
    broker = site.broker
    if broker is None:
        raise ConfigError([f"{args.config}: site {site.id} has no MQTT broker (sites.mqtt)"])
    try:
        doc = {"command": "list"} if args.list else json.loads(args.payload)
    except ValueError as exc:
        raise ConfigError([f"payload is not JSON: {exc}"]) from None
    if not isinstance(doc, dict):
        raise ConfigError(["payload must be a JSON object"])
    doc.setdefault("id", f"cli-{uuid.uuid4().hex[:12]}")
    doc.setdefault("issued_by", "cli")
    if args.issuer:
        doc["issued_by"] = args.issuer
    signing = args.key_file is not None or bool(site.commands.issuers)
    payload = _signed(site, doc, args) if signing else json.dumps(doc).encode()
    prefix = f"{broker.topic_prefix}/{site.id}"

    async def exchange() -> dict[str, object] | None:
        async with make_client(broker, f"hashspark-cli-{uuid.uuid4().hex[:8]}") as client:
            await client.subscribe(f"{prefix}/command/ack", qos=1)
            await client.publish(f"{prefix}/command", payload, qos=1)
            async with asyncio.timeout(args.timeout):
                async for message in client.messages:
                    ack = ack_document(message.payload)
                    if ack is not None and ack.get("id") == doc["id"]:
                        return ack
        return None

    try:
        ack = asyncio.run(exchange())
    except TimeoutError:
        ack = None
    except aiomqtt.MqttError as exc:
        raise ConfigError([f"broker {broker.host}:{broker.port}: {exc}"]) from None
    except (ssl.SSLError, OSError) as exc:  # our own TLS files: a CA or key that does not load
        raise ConfigError([f"broker {broker.host}:{broker.port} TLS files: {exc}"]) from None
    if ack is None:
        print(f"no ack for {doc['id']} within {args.timeout:g} s: is the daemon running?")
        return EXIT_NO_ANSWER
    accepted = ack.get("status") == "accepted"
    active = ack.get("active")
    if args.list and accepted and isinstance(active, list):
        print(command_table(active))
    else:
        print(json.dumps(ack))
    return EXIT_OK if accepted else EXIT_REFUSED


def _signed(site: SiteConfig, doc: dict[str, object], args: argparse.Namespace) -> bytes:
    """``doc`` as a signed envelope, stamped now, with the issuer's key."""
    names = ", ".join(sorted(site.commands.issuers)) or "the name its key was issued to"
    if not args.issuer:
        raise ConfigError([f"site {site.id} takes only signed commands: give --issuer ({names})"])
    if args.key_file is not None:
        try:
            key = args.key_file.read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"--key-file {args.key_file}: cannot read it ({exc})"]) from None
    elif args.issuer in site.commands.issuers:
        key = site.commands.issuers[args.issuer].key.get_secret_value()
    else:
        raise ConfigError([f"site {site.id} has no issuer {args.issuer!r} ({names})"])
    doc.setdefault("issued_at", datetime.now(UTC).isoformat(timespec="milliseconds"))
    return sign(json.dumps(doc), key)


def ack_document(payload: object) -> dict[str, object] | None:
    """An ack as a JSON object, or None for anything else on the ack topic (not JSON, not
    UTF-8, nested past the parser's limit, not an object): another client's garbage,
    possibly retained, is skipped while the answer is awaited, never fatal."""
    if not isinstance(payload, bytes | bytearray):
        return None
    try:
        doc = json.loads(bytes(payload))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return doc if isinstance(doc, dict) else None


_COLUMNS = ("id", "command", "issued_by", "state", "start", "end", "deadline", "cap_mw")


def command_table(active: list[object]) -> str:
    """The answer to ``list`` as a text table, one command a line."""
    if not active:
        return "no active or scheduled commands"
    rows = [list(_COLUMNS)]
    for item in active:
        entry = item if isinstance(item, dict) else {}
        cells = ["-" if entry.get(c) is None else str(entry.get(c)) for c in _COLUMNS]
        if entry.get("tolerance_mw") is not None:
            cells[-1] += f" ±{entry['tolerance_mw']}"
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
