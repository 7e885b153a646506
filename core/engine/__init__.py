"""The engine: compiled workflows (compiled.py), the worker that claims and advances runs (worker.py) on a
thread pool (executor.py) with its batch statements (statements.py), events into runs (events.py) and the built-in
step types (steps/)."""
