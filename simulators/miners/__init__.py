"""Simulated ASICs that speak real firmware protocols (LuxOS, stock Antminer, Braiins OS+)."""
