"""The application layer: repositories and the unit of work."""
