"""Network latency with Linux ``tc netem`` inside a target's network namespace."""
