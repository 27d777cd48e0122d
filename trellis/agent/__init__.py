"""The agent process: wiring, lifecycle, signals (see agent.py)."""
