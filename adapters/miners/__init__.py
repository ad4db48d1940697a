"""Miner drivers. Each module below registers its config model and builder.

Adding a driver type: write its module (config model with ``type: Literal[...]``, the
driver implementing ``MinerDriver``, ``DRIVERS.register(...)`` at the bottom) and import it here.
"""

from adapters.miners import asicrs, driver, simulated

__all__ = ["asicrs", "driver", "simulated"]
