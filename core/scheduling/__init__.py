"""Scheduling: the APScheduler service (service.py), its jobs (jobs.py) audited as system tasks (tasks.py),
retention (housekeeping.py), and what will happen and when (upcoming.py)."""
