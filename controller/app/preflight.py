"""The checks ``run`` makes before it starts, shared with ``check-config``: one validation path.

Whatever the schema can say is said by ``load_config`` (``controller/config``), so every
command refuses the same configs with the same message. What needs more than the file, here:

- a recorded feed's CSV is read and checked (``run`` reads it at start-up);
- implausible contracts are warned about (``controller/config/plausibility.py``);
- a site that takes commands over MQTT without issuers is warned about: its commands are
  unauthenticated (``adapters/control/auth.py``; ``command_warnings``).

What only a run can find out stays with the run: a ``--simulated`` run without recorded feeds,
a state directory it cannot write, a port in use, a broker or a miner that does not answer.
"""

from __future__ import annotations

import sys

from adapters.feeds.recorded import RecordedFeedConfig, load_recording
from controller.app.bitcoin_feeds import KINDS as BITCOIN_KINDS
from controller.app.currencies import load_hashprice, load_prices, load_rate
from controller.config import LoadedConfig, contract_warnings
from controller.config.bitcoin_inputs import BITCOIN_FEEDS


def preflight(loaded: LoadedConfig) -> list[str]:
    """Raise what ``run`` would refuse (``RecordingError``); return the warnings, one a line."""
    for site in loaded.config.sites:
        for key, feed in (("price_feed", site.price_feed), ("day_ahead_feed", site.day_ahead_feed)):
            if isinstance(feed, RecordedFeedConfig):
                load_prices(site, key, feed.path)
        if isinstance(site.hashprice_feed, RecordedFeedConfig):
            load_hashprice(site.hashprice_feed.path)
        for btc_key, kind in zip(BITCOIN_FEEDS, BITCOIN_KINDS, strict=True):
            btc_feed = None if site.bitcoin is None else getattr(site.bitcoin, btc_key)
            if isinstance(btc_feed, RecordedFeedConfig):
                load_recording(btc_feed.path, kind.value)
        load_rate(site)
    return [f"{loaded.path}: {line}" for line in contract_warnings(loaded.config)]


def command_warnings(loaded: LoadedConfig) -> list[str]:
    """One line per site whose commands are unauthenticated (it has a broker, no issuers).

    ``check-config`` prints them with the other warnings; ``run`` logs each as
    ``commands_unauthenticated`` (its stderr is JSON lines).
    """
    return [
        f"{loaded.path}: sites[{i}] ({site.id}): commands are unauthenticated: any client the "
        "broker admits may command the site (sign them: [sites.commands.issuers])"
        for i, site in enumerate(loaded.config.sites)
        if site.broker is not None and not site.commands.issuers
    ]


def print_warnings(warnings: list[str]) -> None:
    """Each warning on stderr, one line each, the way errors are printed."""
    for line in warnings:
        print(f"hashspark: warning: {line}", file=sys.stderr)
