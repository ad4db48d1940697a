"""The replay and comparison application: fast and loop replays, the live path, reports."""
