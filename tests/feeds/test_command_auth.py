"""Command authority: signatures, the replay window, who may clear a grid program, and a flood
of refusals summarised rather than written line by line (no broker: the handler itself)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from adapters.control.apply import AuditLog, CommandHandler
from adapters.control.auth import CommandAuth, CommandAuthConfig, IssuerConfig, sign
from adapters.control.commands import CommandIntake, CommandLimits
from adapters.control.rejections import CommandStats, RejectionLimiter
from controller.app.preflight import command_warnings
from controller.config import load_config
from controller.domain import iso
from controller.runtime.override_book import OverrideBook

NOW = 1_795_300_000.0
LIMITS = CommandLimits(max_hold_s=6 * 3600, max_lead_s=24 * 3600, max_mw=5.0)
OPS_KEY, QSE_KEY, AGG_KEY = "k-ops-" + "a" * 58, "k-qse-" + "b" * 58, "k-agg-" + "c" * 58
AUTH = CommandAuth.from_config(
    CommandAuthConfig(
        issuers={
            "ops": IssuerConfig(key=SecretStr(OPS_KEY), role="operator"),
            "qse": IssuerConfig(key=SecretStr(QSE_KEY), role="grid"),
            "agg": IssuerConfig(key=SecretStr(AGG_KEY), role="grid"),
        },
        replay_window_s=300,
    )
)
KEYS = {"ops": OPS_KEY, "qse": QSE_KEY, "agg": AGG_KEY}


def _at(offset_s: float) -> str:
    return iso(NOW + offset_s)


def _signed(
    issuer: str, doc: Mapping[str, object], *, key: str | None = None, at: float = 0.0
) -> bytes:
    body = {"issued_by": issuer, "issued_at": _at(at), **doc}
    return sign(json.dumps(body), key or KEYS[issuer])


def _curtail(cid: str) -> dict[str, object]:
    return {"command": "force_curtail", "id": cid, "until": _at(600)}


def _dr(cid: str) -> dict[str, object]:
    return {"command": "demand_response", "id": cid, "max_mw": 1.0,
            "deadline": _at(600), "end": _at(3600)}  # fmt: skip


def _handler(tmp_path: Path, auth: CommandAuth = AUTH) -> tuple[CommandHandler, OverrideBook]:
    book = OverrideBook()
    intake = CommandIntake("hb-west", LIMITS, auth=auth)
    audit = AuditLog(tmp_path / "audit.jsonl")
    return CommandHandler("hb-west", intake, book, audit), book


def _ack(handler: CommandHandler, raw: bytes, now: float = NOW) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(handler.receive(raw, now).to_bytes())
    return doc


def test_a_signed_command_from_a_configured_issuer_is_applied(tmp_path: Path) -> None:
    handler, book = _handler(tmp_path)
    ack = _ack(handler, _signed("ops", _curtail("op-1")))
    assert (ack["id"], ack["status"]) == ("op-1", "accepted")
    assert [(o.id, o.issued_by) for o in book.current(NOW)] == [("op-1", "ops")]
    # The envelope is what any client can build: HMAC-SHA256 over the signed text's bytes.
    text = json.dumps({"issued_by": "qse", "issued_at": _at(0), **_curtail("q-1")})
    mac = hmac.new(QSE_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
    raw = json.dumps({"signed": text, "hmac_sha256": mac}).encode()
    assert _ack(handler, raw)["status"] == "accepted"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (json.dumps(_curtail("u-1") | {"issued_by": "ops"}).encode(), "unsigned"),
        (_signed("ops", _curtail("k-1"), key=QSE_KEY), "bad_signature"),
        (_signed("mallory", _curtail("m-1"), key=OPS_KEY), "unknown_issuer"),
        (
            json.dumps(
                {
                    "signed": json.dumps({"issued_by": "ops", "issued_at": _at(0)} | _curtail("t"))
                    + " ",
                    "hmac_sha256": json.loads(_signed("ops", _curtail("t")))["hmac_sha256"],
                }
            ).encode(),
            "bad_signature",  # one byte more than was signed
        ),
        (_signed("ops", _curtail("old"), at=-301), "replay"),
        (_signed("ops", _curtail("future"), at=+301), "replay"),
        (sign(json.dumps({"issued_by": "ops"} | _curtail("no-at")), OPS_KEY), "replay"),
        (b'{"signed": 1, "hmac_sha256": "00"}', "malformed"),
        (json.dumps({"signed": "{}", "hmac_sha256": "\u00e9" * 64}).encode(), "bad_signature"),
        (b"not json", "malformed"),
    ],
    ids=[
        "unsigned",
        "wrong key",
        "unknown issuer",
        "tampered",
        "too old",
        "too new",
        "no issued_at",
        "bad envelope",
        "non-ascii hmac",
        "not json",
    ],
)
def test_a_site_with_issuers_refuses_what_is_not_signed_by_one(
    tmp_path: Path, raw: bytes, code: str
) -> None:
    handler, book = _handler(tmp_path)
    ack = _ack(handler, raw)
    assert (ack["status"], ack["code"]) == ("rejected", code), ack
    assert book.current(NOW) == ()


def test_a_replayed_command_is_never_applied_twice_within_the_window(tmp_path: Path) -> None:
    book = OverrideBook()
    intake = CommandIntake("hb-west", LIMITS, auth=AUTH, remember=4)  # a short id memory
    handler = CommandHandler("hb-west", intake, book, AuditLog(tmp_path / "audit.jsonl"))
    first = _signed("ops", _curtail("op-1"))
    assert _ack(handler, first)["status"] == "accepted"
    handler.receive(_signed("ops", {"command": "clear", "id": "c-1", "target": "op-1"}), NOW)
    for i in range(10):  # more accepted ids than the plain id memory holds
        assert _ack(handler, _signed("ops", _curtail(f"x-{i}")), NOW + 1)["status"] == "accepted"
    assert _ack(handler, first, NOW + 250)["status"] == "duplicate"
    assert "op-1" not in {o.id for o in book.current(NOW + 250)}
    assert _ack(handler, first, NOW + 400)["code"] == "replay"  # past the window


def test_a_grid_program_is_cleared_only_by_its_issuer_or_an_operator(tmp_path: Path) -> None:
    handler, book = _handler(tmp_path)
    assert _ack(handler, _signed("qse", _dr("ers-1")))["status"] == "accepted"
    assert _ack(handler, _signed("agg", _curtail("agg-curtail")))["status"] == "accepted"
    refused = _ack(handler, _signed("agg", {"command": "clear", "id": "c1", "target": "ers-1"}))
    assert (refused["status"], refused["code"]) == ("rejected", "not_permitted")
    by_kind = {"command": "clear", "id": "c2", "target": "demand_response"}
    assert _ack(handler, _signed("agg", by_kind))["code"] == "not_permitted"
    assert "ers-1" in {o.id for o in book.current(NOW)}
    # Not a grid program: anyone with a key may clear a force_curtail.
    cleared = {"command": "clear", "id": "c3", "target": "agg-curtail"}
    assert _ack(handler, _signed("qse", cleared))["status"] == "accepted"
    assert _ack(handler, _signed("qse", by_kind | {"id": "c4"}))["status"] == "accepted"
    assert _ack(handler, _signed("qse", _dr("ers-2")))["status"] == "accepted"
    operator = {"command": "clear", "id": "c5", "target": "ers-2"}
    assert _ack(handler, _signed("ops", operator))["status"] == "accepted"
    assert book.current(NOW) == ()


def test_unsigned_issuers_are_claims_but_still_guard_grid_programs(tmp_path: Path) -> None:
    handler, book = _handler(tmp_path, CommandAuth({}, 300.0))
    dr = json.dumps(_dr("ers-1") | {"issued_by": "ercot-gateway"}).encode()
    assert _ack(handler, dr)["status"] == "accepted"
    other = {"command": "clear", "id": "c1", "target": "ers-1", "issued_by": "dashboard"}
    assert _ack(handler, json.dumps(other).encode())["code"] == "not_permitted"
    # The claimed name "cli" (the CLI's default) holds the operator role: a claim only.
    cli = {"command": "clear", "id": "c2", "target": "ers-1", "issued_by": "cli"}
    assert _ack(handler, json.dumps(cli).encode())["status"] == "accepted"
    assert book.current(NOW) == ()


def test_a_flood_of_refusals_is_counted_and_summarised_once_per_burst(tmp_path: Path) -> None:
    book = OverrideBook()
    stats = CommandStats()
    limiter = RejectionLimiter(burst=5, rate_per_s=1.0, quiet_s=5.0)
    handler = CommandHandler(
        "hb-west",
        CommandIntake("hb-west", LIMITS, auth=AUTH),
        book,
        AuditLog(tmp_path / "audit.jsonl"),
        stats=stats,
        limiter=limiter,
    )
    flood = [b"{", _signed("ops", _curtail("f"), key=QSE_KEY), b'{"command": "clear"}']
    with capture_logs() as logs:
        acks = [handler.handle(flood[i % 3], NOW + i * 1e-4) for i in range(20_000)]
        # A valid command in the middle of the flood is still applied and acknowledged.
        ok = handler.handle(_signed("ops", _curtail("op-1")), NOW + 2.0)
        handler.idle(NOW + 4.0)  # the burst has not ended yet
        handler.idle(NOW + 7.5)  # now it has: one summary
        handler.idle(NOW + 20.0)  # and only one
    assert sum(a is not None for a in acks) == 5  # the allowance is acknowledged one by one
    assert ok is not None
    assert json.loads(ok)["status"] == "accepted"
    assert "op-1" in {o.id for o in book.current(NOW + 3)}
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["command_not_applied"] * 5 + [
        "commands_refused_summary"
    ]
    summary = warnings[-1]
    assert summary["count"] == 19_995
    assert summary["codes"] == {"malformed": 6_665, "bad_signature": 6_665, "unsigned": 6_665}
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == 5 + 1 + 1  # the allowance, the accepted command, the summary
    assert (lines[-1]["status"], lines[-1]["count"]) == ("refused_summary", 19_995)
    assert (stats.total("rejected"), stats.total("accepted")) == (20_000, 1)
    # After a quiet spell the allowance is back: the next typo gets its own answer.
    assert handler.handle(b"{", NOW + 30.0) is not None


def test_check_config_warns_when_a_sites_commands_are_unauthenticated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHSPARK_TEST_KEY", "k" * 64)
    base = """
[[sites]]
id = "w1"
price_feed = { type = "mqtt", broker = { host = "127.0.0.1", port = 1883 } }
hashprice_feed = { type = "mqtt", broker = { host = "127.0.0.1", port = 1883 } }

[[sites.miners]]
model = "Antminer S21"
count = 10

[sites.supply]
type = "spot"
"""
    path = tmp_path / "site.toml"
    path.write_text(base)
    assert command_warnings(load_config(path)) == [
        f"{path}: sites[0] (w1): commands are unauthenticated: any client the broker admits "
        "may command the site (sign them: [sites.commands.issuers])"
    ]
    path.write_text(base + '\n[sites.commands.issuers.ops]\nkey = { env = "HASHSPARK_TEST_KEY" }\n')
    loaded = load_config(path)
    assert command_warnings(loaded) == []
    assert loaded.config.sites[0].commands.issuers["ops"].role == "grid"  # the default role
    assert "k" * 64 not in repr(loaded.config)  # a key prints as a secret


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=24),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_FIELDS = st.sampled_from(["command", "id", "until", "target", "issued_at", "issued_by", "x"])
_GOOD = st.sampled_from(["force_curtail", "clear", "op-1", _at(60), _at(0), "ops", "qse"])
_INNER = st.dictionaries(_FIELDS, _GOOD | _VALUES, max_size=6)
_PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda signed, mac: json.dumps({"signed": signed, "hmac_sha256": mac}).encode(),
        st.text(max_size=120) | _INNER.map(json.dumps),
        st.text(max_size=70) | st.text("0123456789abcdef", min_size=64, max_size=64),
    ),
    st.dictionaries(st.sampled_from(["signed", "hmac_sha256", "command", "id"]), _VALUES).map(
        lambda d: json.dumps(d).encode()
    ),
    # Well signed by ops, whatever is inside: only these may ever be applied.
    _INNER.map(lambda d: sign(json.dumps({**d, "issued_by": "ops"}), OPS_KEY)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=_PAYLOADS)
def test_any_payload_to_a_signing_site_is_answered_and_only_a_signed_one_applied(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    handler, book = _handler(tmp_path_factory.mktemp("fuzz"))
    ack = handler.receive(raw, NOW)
    assert ack.status in {"accepted", "rejected", "duplicate"}
    if ack.status == "accepted":
        signed = json.loads(json.loads(raw)["signed"])
        assert signed["issued_by"] == "ops"
        assert all(o.issued_by == "ops" for o in book.current(NOW))
    else:
        assert book.current(NOW) == ()
