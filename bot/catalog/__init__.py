"""The procedure catalog: SQLAlchemy models, seed loading, queries and search."""
