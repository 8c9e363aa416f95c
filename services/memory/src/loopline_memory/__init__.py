"""Loopline memory service."""
