"""Loopline tool_executor service."""
