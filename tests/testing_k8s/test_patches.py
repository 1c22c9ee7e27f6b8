from __future__ import annotations

import copy

import pytest

from lyftlearn_provider.testing.k8s.patches import PatchError, json_patch, merge_patch, strategic_merge_patch

POD_SPEC = {
    "containers": [
        {"name": "main", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "proxy:1", "args": ["--a", "--b"]},
    ],
    "volumes": [{"name": "data", "emptyDir": {}}],
    "finalizers": ["x"],
}


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists() -> None:
    original = copy.deepcopy(POD_SPEC)
    patched = merge_patch(POD_SPEC, {"containers": [{"name": "only"}], "volumes": None, "new": {"a": 1}})
    assert patched == {"containers": [{"name": "only"}], "finalizers": ["x"], "new": {"a": 1}}
    assert POD_SPEC == original  # inputs are never modified
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"c": None, "d": 3}}) == {"a": {"b": 1, "d": 3}}
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_strategic_merge_patch_merges_lists_by_merge_key() -> None:
    patched = strategic_merge_patch(
        POD_SPEC,
        {
            "containers": [
                {
                    "name": "main",
                    "image": "app:2",
                    "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                },
                {"name": "sidecar", "args": ["--c"]},
            ],
            "finalizers": ["y"],
        },
    )
    main, sidecar = patched["containers"]
    assert main["image"] == "app:2"
    assert main["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    # Lists without a patch strategy (args) are replaced; finalizers merge as a set.
    assert sidecar == {"name": "sidecar", "image": "proxy:1", "args": ["--c"]}
    assert patched["finalizers"] == ["x", "y"]


def test_strategic_merge_patch_directives() -> None:
    deleted = strategic_merge_patch(POD_SPEC, {"containers": [{"name": "sidecar", "$patch": "delete"}]})
    assert [c["name"] for c in deleted["containers"]] == ["main"]
    replaced = strategic_merge_patch(
        POD_SPEC, {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "x:1"}]}
    )
    assert replaced["containers"] == [{"name": "solo", "image": "x:1"}]
    map_replaced = strategic_merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"$patch": "replace", "d": 3}})
    assert map_replaced == {"a": {"d": 3}}
    retained = strategic_merge_patch(
        {"s": {"type": "Recreate", "rollingUpdate": {}}}, {"s": {"$retainKeys": ["type"], "type": "Recreate"}}
    )
    assert retained == {"s": {"type": "Recreate"}}
    # Service ports merge by port, container ports by containerPort.
    ports = strategic_merge_patch(
        {"ports": [{"port": 80, "name": "http"}]}, {"ports": [{"port": 80, "name": "web"}]}
    )
    assert ports == {"ports": [{"port": 80, "name": "web"}]}


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a/b": "1"}}, "spec": {"items": [1, 2, 3]}}
    patched = json_patch(
        doc,
        [
            {"op": "test", "path": "/metadata/labels/a~1b", "value": "1"},
            {"op": "add", "path": "/spec/items/-", "value": 4},
            {"op": "add", "path": "/spec/items/0", "value": 0},
            {"op": "remove", "path": "/spec/items/1"},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
            {"op": "copy", "from": "/spec/items", "path": "/spec/copy"},
            {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
        ],
    )
    assert patched == {
        "metadata": {"labels": {"a/b": "2"}},
        "spec": {"items": [0, 2, 3, 4], "moved": [0, 2, 3, 4]},
    }
    assert doc["spec"]["items"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("ops", "status"),
    [
        ([{"op": "test", "path": "/a", "value": 2}], 422),
        ([{"op": "replace", "path": "/missing", "value": 1}], 422),
        ([{"op": "remove", "path": "/missing"}], 422),
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ([{"op": "add", "path": "a", "value": 1}], 400),
        ({"op": "add"}, 400),
    ],
)
def test_json_patch_errors_carry_the_api_status(ops: object, status: int) -> None:
    with pytest.raises(PatchError) as raised:
        json_patch({"a": 1}, ops)  # type: ignore[arg-type]
    assert raised.value.status == status
