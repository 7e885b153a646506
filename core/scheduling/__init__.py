"""Scheduling: the APScheduler service (service.py), its jobs (jobs.py) audited as system tasks (tasks.py),
cron cycles (cron.py) and retention (housekeeping.py)."""
