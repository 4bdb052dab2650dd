"""The platform-neutral Router and the thin adapters that feed it."""
