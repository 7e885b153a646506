"""The campaignkit command line (Typer + Rich)."""

from .app import main

__all__ = ["main"]
