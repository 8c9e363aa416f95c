"""Loopline's Python SDK.

async with Loopline() as client:
    run = await client.submit("Compute 17 + 25, then multiply the result by 3")
    async for event in run.steps():
        print(event.type)
    print(run.outcome)
"""

from loopline_bus import EventStream

from loopline.sdk._client import Loopline, Run

__all__ = ["EventStream", "Loopline", "Run"]
