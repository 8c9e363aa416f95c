"""Loopline recovery service."""
