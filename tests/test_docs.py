"""The documentation's examples stay true: the config reference parses as written."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.metrics import METRICS
from controller.config import load_config
from tests.scenario_kit import T0, write_csv

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_example_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs/configuration.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example is not None
    write_csv(tmp_path / "prices.csv", "usd_per_mwh", [(T0, 30.0)])
    write_csv(tmp_path / "hashprice.csv", "usd_per_ph_day", [(T0, 50.0)])
    path = tmp_path / "config.toml"
    path.write_text(example.group(1))
    config = load_config(path).config
    site = config.sites[0]
    assert [h.id for h in site.hedges] == ["call-200", "fwd-70ph"]
    assert site.fleet().size == 1000


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme


def test_every_metric_is_documented() -> None:
    text = (ROOT / "docs/ledger-and-metrics.md").read_text()
    for m in METRICS:
        name = m.name + ("_total" if m.kind == "counter" else "")
        assert f"`{name}`" in text, name


def test_reliability_names_only_tests_that_exist() -> None:
    text = (ROOT / "docs/reliability.md").read_text()
    named = set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", text))
    assert len(named) >= 25
    for path, name in sorted(named):
        source = (ROOT / path).read_text()
        defined = re.search(rf"^(async )?def {name}\(|^{name}(, \w+)? = ", source, re.M)
        assert defined, f"docs/reliability.md names {path}::{name}, which does not exist"
