"""What the project's tests share, in one place: `tests/` is on pytest's `pythonpath`, so every area imports these
as `support.<module>`. broken_adapters.py is loaded by the runner itself (`--impl=<its path>:<name>`), not imported."""
