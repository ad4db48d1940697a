"""Price recordings: importing market exports into the canonical form, and its metadata."""
