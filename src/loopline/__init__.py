"""Loopline: run AI agents in production on Apache Kafka."""

__version__ = "0.1.0"
