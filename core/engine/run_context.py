"""The engine's bookkeeping inside a run's context (user data never starts with an underscore)."""

from __future__ import annotations

VISITS = "_visits"  # visits so far, by node
VISIT = "_visit"  # the current node's visit: a new visit gets a new idempotency key
WAIT = "_wait"  # the wait the current node started: since, until, events
