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


async def follow(trigger: Any, ended: set[str]) -> None:
    """Run one trigger to its end, reporting every event it yields."""
    async for event in trigger.run():
        report("EVENT", {"job_name": trigger.job_name, "payload": event.payload, "t": time.time()})
    ended.add(trigger.job_name)


async def subscribed(triggers: list[Any], ended: set[str]) -> None:
    """Wait until every shared trigger follows its job: the watcher holds it, it polls it, or it ended."""
    from lyftlearn_provider.tracking.watcher import shared_watcher

    shared = [trigger for trigger in triggers if trigger.source != "poll"]
    while True:
        held = set(ended)
        for trigger in shared:
            held |= shared_watcher(trigger.aws_conn_id, trigger.region_name).job_names
        # A trigger whose watcher cannot work polls its job in a task of its own.
        prefix = "lyftlearn-training-poll-"
        held |= {
            task.get_name().removeprefix(prefix)
            for task in asyncio.all_tasks()
            if task.get_name().startswith(prefix)
        }
        if {trigger.job_name for trigger in shared} <= held:
            return
        await asyncio.sleep(0.02)


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
    ended: set[str] = set()
    tasks = [asyncio.create_task(follow(trigger, ended)) for trigger in triggers]
    # However long a loaded machine takes to start them (the test waits for this line).
    await asyncio.wait_for(subscribed(triggers, ended), 60)
    report("REBUILT", {"mismatches": mismatches(triggers, serialized), "count": len(triggers)})
    await asyncio.gather(*tasks)
    report("DONE", {"mismatches": mismatches(triggers, serialized)})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
