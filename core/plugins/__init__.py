"""The plugin manager (manager.py) and its tracing (tracing.py), the default plugin (builtins.py), the
configuration reference (config_reference.py) and `campaignkit plugin new` (scaffold.py)."""
