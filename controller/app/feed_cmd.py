"""``hashspark feed gridstatus CONFIG --site ID --iso SPP --location SPPSOUTH_HUB ...``.

A price publisher at the edge: gridstatus reads the ISO, the site's MQTT price topic carries
the newest interval to the daemon (adapters/feeds/gridstatus_publisher.py). It runs in its own
environment (``make iso-env``; docs/feeds.md says why): here ``--iso``, ``--market`` and
``--location`` are checked against what the publisher knows before gridstatus is imported,
so a typo is one line and exit 2 in either environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
from pathlib import Path

import aiomqtt
from pydantic import SecretStr

from adapters.feeds.gridstatus_publisher import GridstatusPublisher, Target
from adapters.feeds.gridstatus_source import ISOS, ChoiceError, GridstatusSource
from adapters.feeds.mqtt import MqttFeedConfig
from adapters.feeds.payloads import ReadingKind
from controller.app.cli_support import EXIT_OK, positive
from controller.config import ConfigError, load_config
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock

#: Where the publisher's own MQTT password is read from when ``--username`` is given.
PASSWORD_ENV = "HASHSPARK_FEED_MQTT_PASSWORD"  # noqa: S105 - a variable name, not a secret
#: A poll that did not publish (``--once``): the ISO did not answer or had nothing new.
EXIT_NOTHING = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``feed gridstatus``."""
    feed = sub.add_parser("feed", help="publish a live feed to a site's broker")
    kinds = feed.add_subparsers(dest="feed", required=True, metavar="SOURCE")
    p = kinds.add_parser(
        "gridstatus",
        help="an ISO's newest price through gridstatus, as the site's MQTT price",
        description=f"Known ISOs: {', '.join(ISOS)}.",
    )
    p.add_argument("config", type=Path, help="the daemon's config (the site's broker and topic)")
    p.add_argument("--site", help="site id, when the config has several")
    p.add_argument("--iso", required=True, help=f"one of {', '.join(ISOS)}")
    p.add_argument("--location", required=True, help="a hub or zone, as gridstatus names it")
    p.add_argument("--market", default="REAL_TIME_5_MIN", help="default REAL_TIME_5_MIN")
    p.add_argument("--interval-s", type=positive, default=60.0, help="seconds between polls")
    p.add_argument("--timeout-s", type=positive, default=30.0, help="socket timeout per request")
    p.add_argument("--username", help=f"the publisher's MQTT user (password from ${PASSWORD_ENV})")
    p.add_argument("--once", action="store_true", help="poll and publish once, then exit")


def _target(args: argparse.Namespace) -> tuple[Target, MqttFeedConfig]:
    cfg = load_config(args.config).config
    sites = [s for s in cfg.sites if args.site in (None, s.id)]
    if len(sites) != 1:
        names = ", ".join(s.id for s in cfg.sites)
        raise ConfigError([f"{args.config}: choose one site with --site ({names})"])
    site = sites[0]
    feed = site.price_feed
    if not isinstance(feed, MqttFeedConfig):
        raise ConfigError(
            [f"{args.config}: sites[{site.id}].price_feed.type is {feed.type!r}: "
             "the publisher feeds a site whose price_feed.type is \"mqtt\""]
        )  # fmt: skip
    broker = feed.broker
    if args.username is not None:
        password = os.environ.get(PASSWORD_ENV)
        secret = SecretStr(password) if password else None
        broker = broker.model_copy(update={"username": args.username, "password": secret})
    topic = feed.topic or f"{broker.topic_prefix.rstrip('/')}/{site.id}/price"
    return Target(broker, topic, f"hashspark-gridstatus-{site.id}"), feed


def run(args: argparse.Namespace) -> int:
    """Publish until stopped (SIGINT, SIGTERM), or once with ``--once``."""
    try:
        source = GridstatusSource(args.iso, args.market, args.location)
        target, feed = _target(args)
        source.open()  # gridstatus missing from this environment: say so now, in one line
    except ChoiceError as exc:
        raise ConfigError([str(exc)]) from None
    logs.configure("info")
    # gridstatus (pandas.read_csv, requests) opens sockets without a timeout: this process
    # is the publisher's alone, so the default applies to every request it makes.
    socket.setdefaulttimeout(args.timeout_s)
    publisher = GridstatusPublisher(
        source,
        target,
        SystemClock(),
        bound=feed.bound(ReadingKind.PRICE),
        interval_s=args.interval_s,
        max_future_s=feed.max_future_s,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await publisher.run(stop, once=args.once)

    broker = f"broker {target.broker.host}:{target.broker.port}"
    try:
        asyncio.run(main())
    except aiomqtt.MqttError as exc:  # --once: the broker could not be reached
        raise ConfigError([f"{broker}: {exc}"]) from None
    except (ssl.SSLError, OSError) as exc:  # our own TLS files (a CA or key that does not load)
        raise ConfigError([f"{broker} TLS files: {exc}"]) from None
    if args.once and publisher.published == 0:
        return EXIT_NOTHING
    return EXIT_OK
