"""Outbound HTTP for plugins: a checked client (client.py) and a templated call to one configured endpoint
(call.py)."""
