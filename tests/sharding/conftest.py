"""The sharding tests use the feed tests' private Mosquitto."""

from tests.feeds.conftest import broker  # noqa: F401 (a fixture, used by name)
