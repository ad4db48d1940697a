"""Operator and grid control: command payloads, bounds and acknowledgements."""
