"""The SQLAlchemy adapters: schema, PostgreSQL and SQLite backends, snapshots."""
