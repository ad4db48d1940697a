"""The composition root: assemble(), the daemon, the worker, replay and compare, the CLI."""
