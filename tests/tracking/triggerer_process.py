"""
Stand in for a triggerer process: rebuild triggers from serialized kwargs, run them, print their events.

Usage: ``python triggerer_process.py TRIGGERS.json``, where the file holds a list of
``[classpath, kwargs]`` pairs as ``BaseTrigger.serialize()`` returns them. Each trigger is rebuilt
the way Airflow's triggerer does it (import the class, call it with the kwargs) and all of them run
concurrently on one event loop. Lines meant for the test start with a tag (Airflow logs to stdout too):

- ``REBUILT {"mismatches": [...]}`` once every trigger is rebuilt and subscribed;
- ``EVENT {"job_name": ..., "payload": ..., "t": epoch seconds}`` per event, flushed at once;
- ``DONE {"mismatches": [...]}`` when every trigger's ``run()`` has ended.

``mismatches`` names the triggers whose ``serialize()`` differs from the kwargs they were built from
(after the rebuild, then again after running): the kwargs must be all of a trigger's state.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from typing import Any


def rebuild(classpath: str, kwargs: dict[str, Any]) -> Any:
    """Return the trigger ``classpath(**kwargs)``, as the triggerer recreates a deferred task's trigger."""
    module_name, _, class_name = classpath.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def report(tag: str, document: dict[str, Any]) -> None:
    """Print one tagged JSON line for the test."""
    print(f"{tag} {json.dumps(document, sort_keys=True)}", flush=True)


async def follow(trigger: Any) -> None:
    """Run one trigger to its end, reporting every event it yields."""
    async for event in trigger.run():
        report("EVENT", {"job_name": trigger.job_name, "payload": event.payload, "t": time.time()})


def mismatches(triggers: list[Any], serialized: list[list[Any]]) -> list[str]:
    """Return the jobs whose trigger no longer serializes to the kwargs it was built from."""
    return [
        trigger.job_name
        for trigger, (classpath, kwargs) in zip(triggers, serialized, strict=True)
        if list(trigger.serialize()) != [classpath, kwargs]
    ]


async def main(path: str) -> None:
    with open(path) as handle:
        serialized: list[list[Any]] = json.load(handle)
    triggers = [rebuild(classpath, kwargs) for classpath, kwargs in serialized]
    tasks = [asyncio.create_task(follow(trigger)) for trigger in triggers]
    await asyncio.sleep(0.2)  # every trigger has subscribed
    report("REBUILT", {"mismatches": mismatches(triggers, serialized), "count": len(triggers)})
    await asyncio.gather(*tasks)
    report("DONE", {"mismatches": mismatches(triggers, serialized)})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
