"""The one registry type: built-ins and entry-point plugins register alike; an unknown name gets one
error shape (the known names, and the closest one) in every registry."""

import re

import pytest
import torch

from prunebench import api, registry
from prunebench.data import DATASETS, dataset_info
from prunebench.masks import ALLOCATIONS, allocate
from prunebench.models import MODELS, build_model
from prunebench.registry import Registry, UnknownName
from prunebench.spec import ModelSpec


def test_third_party_methods_register_through_entry_points(monkeypatch):
    """A package registers a method by naming a module in the 'prunebench.methods' entry-point group."""
    loaded, groups = [], []

    class EntryPoint:  # what importlib.metadata returns for the group; load() imports the plugin module
        def load(self):
            @api.register_method("thirdparty")
            class ThirdParty(api.Method):
                def run(self, s, p) -> None:
                    s.train()
                    s.record(0)

            loaded.append(ThirdParty)

    def entry_points(group):
        groups.append(group)
        return [EntryPoint()] if group == "prunebench.methods" else []

    builtins = {name: api.get_method(name) for name in api.method_names()}  # before the patch: loaded already
    fresh = Registry("method", builtins=("prunebench.methods.*",))
    for name, cls in builtins.items():  # the built-in modules are imported already, so they do not register again
        fresh.add(name, cls)
    monkeypatch.setattr(registry, "entry_points", entry_points)
    monkeypatch.setattr(api, "METHODS", fresh)
    assert not loaded and not groups  # nothing loaded before the first lookup
    assert "thirdparty" in api.method_names() and api.get_method("thirdparty") is loaded[0]
    assert loaded[0].name == "thirdparty"
    assert set(builtins) < set(api.method_names())  # the plugin beside the built-ins
    assert api.get_method("lrr") is builtins["lrr"]
    api.method_names()
    assert groups == ["prunebench.methods"] and len(loaded) == 1  # the group is loaded once


def test_a_registry_loads_its_own_entry_point_group_once(monkeypatch):
    groups = []

    class EntryPoint:
        def load(self):
            widgets.add("plugin", "from a plugin")

    def entry_points(group):
        groups.append(group)
        return [EntryPoint()] if group == "prunebench.widgets" else []

    monkeypatch.setattr(registry, "entry_points", entry_points)
    widgets = Registry("widget")

    @widgets.register("builtin")
    def builtin():
        return None

    assert groups == []
    assert widgets.names() == ["builtin", "plugin"] and widgets.get("plugin") == "from a plugin"
    assert "plugin" in widgets and list(widgets) == ["builtin", "plugin"]
    assert groups == ["prunebench.widgets"]
    with pytest.raises(UnknownName, match=re.escape("unknown widget 'plugn'; known: builtin, plugin. Did you mean 'plugin'?")):
        widgets.get("plugn")
    with pytest.raises(UnknownName, match=r"^unknown widget 'zzz'; known: builtin, plugin\.$"):  # no close name: no hint
        widgets.get("zzz")


def _allocation(name):
    return allocate({"a": torch.rand(4)}, {"a": torch.ones(4, dtype=torch.bool)}, 0.5, name)


@pytest.mark.parametrize("kind, names, lookup, wrong, closest", [
    ("method", api.method_names, api.get_method, "lr", "lrr"),
    ("scorer", api.scorer_names, api.get_scorer, "magnitud", "magnitude"),
    ("allocation", ALLOCATIONS.names, _allocation, "erk2", "erk"),
    ("model", MODELS.names, lambda name: build_model(ModelSpec(name=name), 10, (3, 32, 32)), "resnet19", "resnet18"),
    ("dataset", DATASETS.names, dataset_info, "cifar11", "cifar10"),
])
def test_an_unknown_name_gives_one_message_shape_in_every_registry(kind, names, lookup, wrong, closest):
    known = names()
    assert closest in known and wrong not in known
    with pytest.raises(UnknownName) as e:
        lookup(wrong)
    assert isinstance(e.value, LookupError)
    assert str(e.value) == f"unknown {kind} {wrong!r}; known: {', '.join(known)}. Did you mean {closest!r}?"
    assert (e.value.kind, e.value.name, e.value.known) == (kind, wrong, known)


def _registry_with_plugin(monkeypatch, load):
    class EntryPoint:
        name, value = "broken", "broken_pkg.methods"

        def load(self):
            load()

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()] if group == "prunebench.widgets" else [])
    widgets = Registry("widget")

    @widgets.register("builtin")
    def builtin():
        return None

    return widgets, builtin


def test_a_plugin_that_fails_to_import_is_named_and_left_out(monkeypatch, caplog):
    def load():
        raise ImportError("No module named 'torch_pruning_extras'")

    widgets, builtin = _registry_with_plugin(monkeypatch, load)
    assert widgets.get("builtin") is builtin  # every other name still works
    assert ("plugin broken (broken_pkg.methods) of entry-point group prunebench.widgets is left out: "
            "ImportError: No module named 'torch_pruning_extras'") in caplog.text


def test_a_plugin_may_not_replace_a_built_in(monkeypatch, caplog):
    def impostor():
        return "not the built-in"

    widgets, builtin = _registry_with_plugin(monkeypatch, lambda: widgets.add("builtin", impostor))
    assert widgets.get("builtin") is builtin
    assert "widget 'builtin' is registered already (by tests.test_registry._registry_with_plugin.<locals>.builtin)" in caplog.text
    with pytest.raises(registry.NameTaken):
        api.register_method("imp")(type("Imp", (api.Method,), {"run": lambda self, s, p: None}))
    assert api.get_method("imp").__module__ == "prunebench.methods.imp"
