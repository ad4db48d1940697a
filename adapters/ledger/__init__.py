"""The P&L ledger: the durable SQLite journal and an in-memory one for replays."""
