"""Bundled plugins, one folder per kind."""
