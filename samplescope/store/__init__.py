"""The only package that talks to the database (DuckDB)."""

from samplescope.store.database import SCHEMA_VERSION, RunDatabase

__all__ = ["SCHEMA_VERSION", "RunDatabase"]
