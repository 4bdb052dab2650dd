"""Dikkat's state on SQLite or PostgreSQL: the async Store, its migrations, the feature cache."""
