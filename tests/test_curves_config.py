"""Config of curves: per group ``curve_source`` and ``max_power_w``, and ``[sites.curves]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from controller.config import load_config
from controller.curves.book import CurvePreference, CurveSource
from tests.test_config import S19_CURVE, assert_one_error


def test_curve_source_defaults_to_config_and_each_group_may_choose(
    make_scenario: Callable[..., Path],
) -> None:
    default = load_config(make_scenario()).config.sites[0]
    assert {g.curve_source for g in default.miners} == {CurvePreference.CONFIG}
    path = make_scenario(
        (S19_CURVE, S19_CURVE + '\ncurve_source = "auto"\nmax_power_w = 3100'),
        (
            "[sites.supply]",
            "[sites.curves]\nmin_samples = 10\nrefit_interval_s = 60\n\n[sites.supply]",
        ),
    )
    site = load_config(path).config.sites[0]
    book = site.curve_book()
    assert book.groups[0].preference is CurvePreference.AUTO
    assert book.groups[0].max_power_w == 3100
    assert book.fit.min_samples == 10
    assert book.refit_interval_s == 60
    # Before any firmware or telemetry, every group plans with its config curve.
    assert [c.source for c in book.curves] == [
        CurveSource.NAMEPLATE if g.curve is None else CurveSource.CONFIG for g in site.miners
    ]
    assert book.curves[0].source is CurveSource.CONFIG
    assert book.fleet().size == site.fleet().size


def test_an_unknown_curve_source_names_the_known_ones(make_scenario: Callable[..., Path]) -> None:
    path = make_scenario((S19_CURVE, S19_CURVE + '\ncurve_source = "vendor"'))
    assert_one_error(path, "sites[0].miners[0].curve_source", "'config'", "'auto'")


def test_max_power_w_below_the_configured_curve_is_refused(
    make_scenario: Callable[..., Path],
) -> None:
    path = make_scenario((S19_CURVE, S19_CURVE + "\nmax_power_w = 3000"))
    assert_one_error(path, "sites[0].miners[0]", "max_power_w 3000 is below the curve's 3068 W")
