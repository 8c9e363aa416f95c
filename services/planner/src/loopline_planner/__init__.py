"""Loopline planner service."""
