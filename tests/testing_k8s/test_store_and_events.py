"""The object store and the event recorder, in process (no HTTP, no event loop)."""

from __future__ import annotations

from lyftlearn_provider.testing.k8s.events import EventRecorder
from lyftlearn_provider.testing.k8s.resources import CONFIG_MAPS, EVENTS, PODS
from lyftlearn_provider.testing.k8s.store import ObjectStore, WatchEvent


def _cm(name: str, **data: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "data": data}


def test_every_change_gets_the_next_resource_version_and_is_remembered() -> None:
    store = ObjectStore()
    seen: list[WatchEvent] = []
    store.subscribe(seen.append)
    added = store.put(CONFIG_MAPS, _cm("a", v="1"))
    modified = store.put(CONFIG_MAPS, _cm("a", v="2"))
    removed = store.remove(CONFIG_MAPS, "default", "a")
    assert (added["metadata"]["resourceVersion"], modified["metadata"]["resourceVersion"]) == ("1", "2")
    assert removed is not None and removed["metadata"]["resourceVersion"] == "3"
    assert (added["kind"], added["apiVersion"]) == ("ConfigMap", "v1")
    assert [(e.type, e.resource_version) for e in seen] == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 3)]
    assert seen[1].previous is not None and seen[1].previous["data"] == {"v": "1"}
    # History keeps each version as it was, even after the object changed or went away.
    assert [e.object["metadata"]["resourceVersion"] for e in store.changes_since(0)] == ["1", "2", "3"]
    assert [e.type for e in store.changes_since(2)] == ["DELETED"]
    assert store.get(CONFIG_MAPS, "default", "a") is None and store.resource_version == 3


def test_reads_are_copies_and_history_is_bounded() -> None:
    store = ObjectStore(history_size=2)
    store.put(CONFIG_MAPS, _cm("b", v="1"))
    copy = store.get(CONFIG_MAPS, "default", "b")
    assert copy is not None
    copy["data"]["v"] = "changed"
    assert store.list(CONFIG_MAPS)[0]["data"] == {"v": "1"}
    assert store.oldest_watchable == 0
    store.put(CONFIG_MAPS, _cm("c"))
    store.put(CONFIG_MAPS, _cm("d"))
    assert store.oldest_watchable == 1  # a watch from resourceVersion 0 would have missed a change
    store.clear()
    assert (
        store.list(CONFIG_MAPS) == []
        and store.put(CONFIG_MAPS, _cm("e"))["metadata"]["resourceVersion"] == "4"
    )


def test_repeated_events_are_folded_into_one_with_a_count() -> None:
    store = ObjectStore()
    pod = store.put(PODS, {"metadata": {"name": "p", "namespace": "default", "uid": "u-1"}})
    events = EventRecorder(store)
    first = events.record(pod, "BackOff", "Back-off pulling image", type="Normal")
    again = events.record(pod, "BackOff", "Back-off pulling image", type="Normal")
    other = events.record(pod, "Failed", "Error: ErrImagePull", type="Warning")
    assert first["metadata"]["name"] == again["metadata"]["name"] != other["metadata"]["name"]
    assert (first["count"], again["count"]) == (1, 2)
    assert again["involvedObject"] == {
        "kind": "Pod",
        "namespace": "default",
        "name": "p",
        "uid": "u-1",
        "apiVersion": "v1",
        "resourceVersion": "1",
    }
    assert again["source"] == {"component": "kubelet", "host": "emulator-node"}
    names = [e["metadata"]["name"] for e in store.list(EVENTS, "default")]
    assert names == sorted(names) and len(names) == 2  # named by time, so listed in time order
