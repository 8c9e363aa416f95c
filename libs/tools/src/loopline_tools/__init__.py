"""Loopline tools."""
