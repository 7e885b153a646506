"""Bundled audit_sinks plugins."""
