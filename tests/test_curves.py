"""Curves: the robust monotone fit of telemetry, the sample store, and each group's source."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from controller.config import CurvesConfig
from controller.curves.book import (
    CurveBook,
    CurvePreference,
    CurveSource,
    FirmwareCurve,
    GroupSpec,
    combine,
)
from controller.curves.fit import FitParams, LearnedCurve, NotEnough, SampleStore, fit_curve
from controller.runtime.site_curves import SiteCurves, load_samples, save_samples

NAMEPLATE_TH, NAMEPLATE_W, OVERHEAD_W = 200.0, 3500.0, 525.0


def true_hashrate(power_w: np.ndarray | float) -> np.ndarray:
    """A concave curve: chip power grows with hashrate squared above a fixed overhead."""
    return np.asarray(
        NAMEPLATE_TH * np.sqrt((np.asarray(power_w) - OVERHEAD_W) / (NAMEPLATE_W - OVERHEAD_W))
    )


def samples(
    levels: list[float], per_level: int, noise: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.repeat(np.asarray(levels), per_level)
    h = true_hashrate(p) * (1 + rng.uniform(-noise, noise, p.size))
    return p, h


LEVELS = [1750.0, 2450.0, 2800.0, 3500.0]


def test_clean_levels_give_one_point_each_near_the_truth() -> None:
    p, h = samples(LEVELS, 30, 0.01)
    fit = fit_curve(p, h, FitParams())
    assert isinstance(fit, LearnedCurve)
    assert [w for _, w in fit.points] == LEVELS
    for th, w in fit.points:
        assert th == pytest.approx(float(true_hashrate(w)), rel=0.01)
    assert fit.samples_used == 120


def test_outliers_and_ramps_are_rejected() -> None:
    p, h = samples(LEVELS, 40, 0.01, seed=1)
    rng = np.random.default_rng(2)
    # 12 % of reads are bad: a board dropped out (2/3 hashrate) or a garbage spike (x 5).
    bad = rng.choice(p.size, size=20, replace=False)
    h[bad[:10]] *= 2 / 3
    h[bad[10:]] *= 5
    # miners ramping after a resume pass through many powers, a read or two at each
    ramp_p = np.linspace(300, 3400, 25)
    ramp_h = NAMEPLATE_TH * ramp_p / NAMEPLATE_W
    fit = fit_curve(np.concatenate([p, ramp_p]), np.concatenate([h, ramp_h]), FitParams())
    assert isinstance(fit, LearnedCurve)
    assert [w for _, w in fit.points] == LEVELS
    for th, w in fit.points:
        assert th == pytest.approx(float(true_hashrate(w)), rel=0.01)
    assert fit.samples_rejected >= 20 + 25 - 4  # the bad reads, and ramp reads off any level


def test_a_level_that_hashes_less_than_a_lower_one_is_pooled_into_a_monotone_curve() -> None:
    p, h = samples(LEVELS, 20, 0.005)
    h[p == 2800.0] = 150.0  # below the 2,450 W level's ~167 TH/s: more power for less
    fit = fit_curve(p, h, FitParams())
    assert isinstance(fit, LearnedCurve)
    hashrates = [th for th, _ in fit.points]
    assert all(b > a for a, b in itertools.pairwise(hashrates))
    assert len(fit.points) == 3
    assert 2800.0 not in [w for _, w in fit.points] or 2450.0 not in [w for _, w in fit.points]


def test_too_few_samples_or_levels_is_not_a_curve() -> None:
    p, h = samples(LEVELS, 5, 0.01)
    few = fit_curve(p, h, FitParams(min_samples=60))
    assert isinstance(few, NotEnough)
    assert "20 samples of 60" in few.reason
    p1, h1 = samples([3500.0], 100, 0.01)
    one = fit_curve(p1, h1, FitParams())
    assert isinstance(one, NotEnough)
    assert "1 power levels of 2" in one.reason
    sparse = fit_curve(*samples(LEVELS, 4, 0.01), FitParams(min_samples=1))
    assert isinstance(sparse, NotEnough)  # 4 reads per level: below min_samples_per_point
    assert isinstance(fit_curve(np.zeros(0), np.zeros(0), FitParams()), NotEnough)


def test_nan_and_non_positive_samples_are_ignored() -> None:
    p, h = samples(LEVELS, 20, 0.01)
    p = np.concatenate([p, [np.nan, 3000.0, -5.0]])
    h = np.concatenate([h, [100.0, np.inf, 100.0]])
    fit = fit_curve(p, h, FitParams())
    assert isinstance(fit, LearnedCurve)
    assert len(fit.points) == 4


def test_sample_store_keeps_every_level_when_one_dominates() -> None:
    store = SampleStore(bucket_w=25.0, per_bucket=50)
    store.add(*samples([1750.0, 2450.0], 60, 0.01))
    for seed in range(20):  # the fleet then sits at nameplate for a long time
        store.add(*samples([3500.0], 500, 0.01, seed=seed))
    p, _ = store.arrays()
    assert len(store) == 150
    assert sorted(set(p.tolist())) == [1750.0, 2450.0, 3500.0]


CONFIG_POINTS = ((155.0, 2100.0), (200.0, 3500.0))
FIRMWARE = FirmwareCurve(((120.0, 1750.0), (170.0, 2800.0), (200.0, 3500.0)), "luxos profiles")


def book(preference: CurvePreference, **fit: int) -> CurveBook:
    group = GroupSpec("Antminer S21", 4, None, CONFIG_POINTS, False, preference)
    return CurveBook([group], fit=FitParams(min_samples=20, **fit), refit_interval_s=0.0)


def learn(b: CurveBook, levels: list[float] = LEVELS) -> None:
    p, h = samples(levels, 10, 0.01)
    b.add_samples(np.arange(p.size) % 4, p, h)


@pytest.mark.parametrize(
    ("preference", "firmware", "learned", "source"),
    [
        (CurvePreference.CONFIG, True, True, CurveSource.CONFIG),
        (CurvePreference.FIRMWARE, True, True, CurveSource.FIRMWARE),
        (CurvePreference.FIRMWARE, False, True, CurveSource.CONFIG),
        (CurvePreference.LEARNED, True, True, CurveSource.LEARNED),
        (CurvePreference.LEARNED, True, False, CurveSource.CONFIG),
        (CurvePreference.AUTO, True, True, CurveSource.FIRMWARE),
        (CurvePreference.AUTO, False, True, CurveSource.LEARNED),
        (CurvePreference.AUTO, False, False, CurveSource.CONFIG),
    ],
)
def test_each_preference_picks_its_source_or_falls_back_to_the_config(
    preference: CurvePreference, firmware: bool, learned: bool, source: CurveSource
) -> None:
    b = book(preference)
    b.set_firmware(["luxos"] * 4, [FIRMWARE if firmware else None] * 4)
    if learned:
        learn(b)
    b.refresh(0.0)
    curve = b.curves[0]
    assert curve.source is source
    assert curve.firmware == "luxos"
    expected = {
        CurveSource.CONFIG: CONFIG_POINTS,
        CurveSource.FIRMWARE: FIRMWARE.points,
    }.get(source)
    if expected is not None:
        assert curve.points == expected
    else:
        assert [w for _, w in curve.points] == LEVELS
    fleet = b.fleet()
    assert fleet.size == 4
    assert fleet.power_w[0, 1 : 1 + len(curve.points)].tolist() == [w for _, w in curve.points]


def test_a_nameplate_group_says_so_and_the_fallback_says_why() -> None:
    group = GroupSpec("Antminer S21", 2, "braiins", ((200.0, 3500.0),), True, CurvePreference.AUTO)
    b = CurveBook([group], fit=FitParams(min_samples=20))
    assert b.curves[0].source is CurveSource.NAMEPLATE
    b.refresh(0.0)
    assert "no firmware curve" in b.curves[0].detail
    assert "not learned yet" in b.curves[0].detail


def test_small_drifts_keep_the_curve_and_a_new_source_replaces_it() -> None:
    b = book(CurvePreference.LEARNED)
    assert b.refresh(0.0) == []  # nothing learned: still the config, no change
    learn(b)
    changed = b.refresh(1.0)
    assert [(old.source, new.source) for old, new in changed] == [
        (CurveSource.CONFIG, CurveSource.LEARNED)
    ]
    before = b.curves[0].points
    p, h = samples(LEVELS, 10, 0.01, seed=7)
    b.add_samples(np.arange(p.size) % 4, p, h * 1.005)  # half a percent: noise, not news
    assert b.refresh(2.0) == []
    assert b.curves[0].points == before


def test_refits_wait_for_the_interval() -> None:
    group = GroupSpec("Antminer S21", 4, "luxos", CONFIG_POINTS, False, CurvePreference.LEARNED)
    b = CurveBook([group], fit=FitParams(min_samples=20), refit_interval_s=600.0)
    b.refresh(0.0)
    learn(b)
    assert b.refresh(300.0) == []
    assert b.curves[0].source is CurveSource.CONFIG
    assert len(b.refresh(600.0)) == 1
    # mypy keeps the narrowing above across refresh(), which replaces curves[0]
    assert b.curves[0].source is CurveSource.LEARNED  # type: ignore[comparison-overlap]


def test_firmware_curves_of_a_group_combine_by_power_level() -> None:
    a = FirmwareCurve(((118.0, 1750.0), (200.0, 3500.0)), "bos+ tuner profiles")
    b = FirmwareCurve(((122.0, 1750.0), (204.0, 3500.0), (180.0, 3000.0)), "bos+ tuner profiles")
    c = FirmwareCurve(((120.0, 1750.0), (202.0, 3500.0)), "bos+ tuner profiles")
    curve, n = combine([a, None, b, c])
    assert n == 3
    assert curve is not None
    # 3,000 W is stated by one miner of three: not a point of the group
    assert curve.points == ((120.0, 1750.0), (202.0, 3500.0))
    assert combine([None, None]) == (None, 0)


def test_interleaved_miners_get_their_own_group_rows() -> None:
    groups = [
        GroupSpec("Antminer S21", 2, "luxos", ((200.0, 3500.0),), True, CurvePreference.AUTO),
        GroupSpec("Antminer S19j Pro", 1, "stock", ((104.0, 3068.0),), True, CurvePreference.AUTO),
    ]
    b = CurveBook(groups, group_of=[0, 1, 0])
    fleet = b.fleet()
    assert fleet.power_w[:, 1].tolist() == [3500.0, 3068.0, 3500.0]
    assert [fleet.model_names[m] for m in fleet.model_index] == [
        "Antminer S21",
        "Antminer S19j Pro",
        "Antminer S21",
    ]
    with pytest.raises(ValueError, match="group_of"):
        CurveBook(groups, group_of=[0, 0, 0])


def test_samples_survive_a_restart_and_a_damaged_file_is_none(tmp_path: Path) -> None:
    b = book(CurvePreference.LEARNED)
    b.set_firmware(["luxos"] * 4, [None] * 4)
    learn(b)
    path = tmp_path / "curves" / "s1.json"
    save_samples(path, b.sample_arrays())
    fresh = book(CurvePreference.LEARNED)
    fresh.set_firmware(["luxos"] * 4, [None] * 4)
    fresh.load_samples(load_samples(path, "s1"))
    fresh.refresh(0.0)
    b.refresh(0.0)
    assert fresh.curves[0].source is CurveSource.LEARNED
    assert fresh.curves[0].points == b.curves[0].points
    path.write_text('{"version": 1, "samples": [{"model": "x"}]}')
    assert load_samples(path, "s1") == {}
    path.write_text("not json")
    assert load_samples(path, "s1") == {}
    assert load_samples(tmp_path / "missing.json", "s1") == {}


def test_max_power_w_keeps_overclock_points_out_whatever_the_source() -> None:
    ladder = FirmwareCurve(((120.0, 1750.0), (200.0, 3500.0), (211.0, 3850.0)), "luxos profiles")
    group = GroupSpec(
        "Antminer S21", 2, "luxos", CONFIG_POINTS, False, CurvePreference.AUTO, max_power_w=3500.0
    )
    b = CurveBook([group])
    b.set_firmware(["luxos"] * 2, [ladder] * 2)
    b.refresh(0.0)
    assert b.curves[0].source is CurveSource.FIRMWARE
    assert b.curves[0].points == ((120.0, 1750.0), (200.0, 3500.0))
    low = GroupSpec(
        "Antminer S21", 2, "luxos", ((100.0, 1500.0),), False, CurvePreference.FIRMWARE, 1600.0
    )
    b = CurveBook([low])
    b.set_firmware(["luxos"] * 2, [ladder] * 2)
    b.refresh(0.0)
    assert b.curves[0].source is CurveSource.CONFIG
    assert b.curves[0].detail == "firmware states no point <= 1600 W"


async def test_in_process_sites_use_their_config_curves_and_a_reload_retunes_the_fit() -> None:
    sc = SiteCurves("lab", book(CurvePreference.AUTO), None)
    fleet = await sc.start(0.0)
    assert sc.curves[0].source is CurveSource.CONFIG
    assert fleet.power_w[0, 1:3].tolist() == [2100.0, 3500.0]
    assert sc.after_cycle(1.0) is None  # no driver: nothing to learn from
    sc.reconfigure(CurvesConfig(min_samples=5, refit_interval_s=30.0, change_threshold=0.1))
    assert (sc.book.fit.min_samples, sc.book.refit_interval_s) == (5, 30.0)
    assert sc.book.change_threshold == 0.1


def test_a_reread_that_nobody_answers_keeps_the_firmware_curve() -> None:
    b = book(CurvePreference.FIRMWARE)
    b.set_firmware(["luxos"] * 4, [FIRMWARE] * 4)
    b.refresh(0.0)
    assert b.curves[0].source is CurveSource.FIRMWARE
    b.set_firmware(["luxos"] * 4, [None] * 4, keep_unread=True)  # a network blip
    assert b.refresh(1.0, force=True) == []
    assert b.curves[0].points == FIRMWARE.points
    b.set_firmware(["luxos"] * 4, [None] * 4)  # at start: nothing stated, so the config
    b.refresh(2.0, force=True)
    # mypy keeps the narrowing above across refresh(), which replaces curves[0]
    assert b.curves[0].source is CurveSource.CONFIG  # type: ignore[comparison-overlap]


def test_firmware_is_read_again_only_when_asked_and_due() -> None:
    sc = SiteCurves("s1", book(CurvePreference.FIRMWARE), None)
    assert not sc.firmware_due(1e9, 3600.0)  # never read (no driver)
    sc.firmware_read_at = 100.0
    assert not sc.firmware_due(3699.0, 3600.0)
    assert sc.firmware_due(3700.0, 3600.0)
    assert not sc.firmware_due(1e9, None)
