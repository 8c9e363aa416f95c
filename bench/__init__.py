"""Loopline's benchmark harness: `make bench`, or `uv run python -m bench --help`.

It measures the agent loop with the deterministic demo model and the pure calculator tool:
per-step latency, throughput and machine CPU per durable step with the four services as
separate processes, replay speed, failover time, and the same loop in one process with no
Kafka (the floor). Results are printed as a table and appended to `bench/results/` as JSON.
"""
