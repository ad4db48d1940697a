"""A sharded site: the planner side of the shard bus, its messages, book and config."""
