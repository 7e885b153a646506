"""Campaign definitions: reading YAML within limits (reading.py), the models (workflow.py), loading with the kind's
settings (loader.py), the checks before anything runs (validation.py, template_check.py) and when cycles happen
(schedule.py)."""
