"""Miner drivers: the pyasic fleet driver, its inventory, capabilities and CLI."""

# controller.config imports this package's config model after defining Secret and Strict,
# which that model uses; loading controller.config first keeps the cycle in that order
# whichever module is imported first.
import controller.config  # noqa: F401
