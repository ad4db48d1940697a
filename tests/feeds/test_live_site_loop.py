"""The live MQTT feeds driving the existing site loop: prices move the decision, an outage
longer than the maximum age engages the fail-safe, fresh data after the restart lifts it."""

from __future__ import annotations

import json
import time

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.recorder import format_timestamp
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.domain import OFF, FailSafeAction, build_fleet
from controller.runtime.clocks.system import SystemClock
from controller.runtime.retry import Backoff
from controller.runtime.site_loop import SiteModel
from tests.feeds.conftest import Broker, eventually

SITE = "hb-west"
MAX_AGE_S = 1.0


def _publish_now(broker: Broker, kind: str, key: str, value: float) -> float:
    t = round(time.time(), 3)
    broker.publish(f"hashspark/{SITE}/{kind}", json.dumps({key: value, "ts": format_timestamp(t)}))
    return t


async def test_mqtt_prices_drive_the_loop_through_an_outage(broker: Broker) -> None:
    clock = SystemClock()
    fleet = build_fleet([("Antminer S19j Pro", 3, [(104.0, 3068.0)])])
    params = PolicyParams(
        supply=SpotSupply(),
        price_max_age_s=MAX_AGE_S,
        failsafe_action=FailSafeAction.CURTAIL,
    )
    link = MqttLink(
        SITE,
        MqttBrokerConfig(host="127.0.0.1", port=broker.port),
        clock,
        FeedStats(),
        backoff=Backoff(0.05, 0.2),
    )
    price = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
    hashprice = link.reading_feed(ReadingKind.HASHPRICE, bound=DEFAULT_HASHPRICE_BOUND)
    driver = InProcessFleet(fleet, clock)
    loop = assemble(
        # Curtails and resumes within seconds on the wall clock: no raise interval here.
        SiteModel(SITE, fleet, params, SpotSupply(), (), pacing=PacingParams(0.0)),
        clock=clock,
        price_feed=price,
        hashprice_feed=hashprice,
        driver=driver,
        ledger=MemoryLedger(),
        cycle_s=60,
    )
    async with link:
        await link.wait_up(10)
        _publish_now(broker, "hashprice", "usd_per_ph_day", 55.0)  # EHP about 77.6 USD/MWh
        t = _publish_now(broker, "price", "usd_per_mwh", 20.0)
        await eventually(lambda: (r := price.latest(0)) is not None and r.observed_at == t)
        await eventually(lambda: hashprice.latest(0) is not None)
        plan = await loop.cycle()
        assert plan.failsafe is None
        assert (plan.point > OFF).all()  # cheap power: everything runs

        t = _publish_now(broker, "price", "usd_per_mwh", 900.0)  # a spike
        await eventually(lambda: (r := price.latest(0)) is not None and r.observed_at == t)
        plan = await loop.cycle()
        assert (plan.point == OFF).all()  # the published price moved the decision
        assert driver.commands_applied == 3  # and the miners were commanded

        broker.stop()  # an outage longer than the maximum age
        await eventually(lambda: clock.now() - t > MAX_AGE_S, what="the price to go stale")
        plan = await loop.cycle()
        assert plan.failsafe is not None
        assert "price stale" in plan.failsafe.reason
        assert plan.failsafe.action is FailSafeAction.CURTAIL

        broker.start()
        await eventually(lambda: link.connections >= 2, what="the reconnection")
        t = _publish_now(broker, "price", "usd_per_mwh", 20.0)
        await eventually(lambda: (r := price.latest(0)) is not None and r.observed_at == t)
        plan = await loop.cycle()
        assert plan.failsafe is None  # fresh data lifts the fail-safe
        assert (plan.point > OFF).all()
