"""Miner drivers: the pyasic fleet driver, the in-process fleet, inventory and capabilities."""
