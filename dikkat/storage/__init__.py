"""SQLite storage: schema migrations, the async Store and the synchronous feature cache."""
