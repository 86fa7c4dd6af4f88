"""Shared test helpers: ports, processes and small SavedModels built in the tests."""
