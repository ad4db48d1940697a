"""Benchmark: what masking secrets costs per log line.

Prints the time of one JSON log line through the daemon's structlog pipeline
(``controller/runtime/logs.py``, scrubbing included) and of the scrub step alone, for an
event without a URL and one with a credential-bearing URL, with ``--secrets`` registered
secret values (a site has a handful: broker password, API keys, a token).

    .venv/bin/python bench/bench_redact.py [--lines N] [--secrets K]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from typing import Any

import structlog

from controller.runtime import logs
from controller.runtime.redact import register_secret, register_url, scrub_value

EVENTS: dict[str, dict[str, Any]] = {
    "no URL": {
        "site": "hb-west",
        "miner": "10.0.0.1",
        "point": 3,
        "reason": "timeout after 5 s",
    },
    "URL with a key": {
        "feed": "hb-west:hashprice:hashprice_index",
        "error": "HTTP 500 Internal Server Error from https://idx.example/v1?api_key=zzzzzzzz",
    },
}


def _per_call_us(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--secrets", type=int, default=6)
    args = parser.parse_args()
    for i in range(args.secrets):
        register_secret(f"secret-value-{i}-{'x' * 16}")
    register_url("https://user:pw-0123456789@idx.example/v1?api_key=zzzzzzzz")

    sink = io.StringIO()
    real = sys.stderr
    sys.stderr = sink
    try:
        logs.configure("info")
        log = structlog.get_logger("bench")
        rows = []
        for name, event in EVENTS.items():
            line = _per_call_us(lambda e=event: log.info("bench_event", **e), args.lines)
            alone = _per_call_us(lambda e=event: scrub_value(dict(e)), args.lines)
            rows.append((name, line, alone))
    finally:
        sys.stderr = real
        structlog.reset_defaults()
    print(f"{args.lines} lines each, {args.secrets} registered secrets")
    print(f"{'event':<16} {'log line (us)':>14} {'scrub alone (us)':>17} {'share':>6}")
    for name, line, alone in rows:
        print(f"{name:<16} {line:>14.1f} {alone:>17.1f} {alone / line:>6.0%}")


if __name__ == "__main__":
    main()
