"""One registry type for every kind of plugin: methods, scorers, allocations, models, datasets.

A registry maps names to objects. The built-ins register themselves when their modules are imported;
the registry imports those modules, then loads the entry points of its group ``prunebench.<kind>s``
(a third-party package's ``[project.entry-points."prunebench.methods"]``), on its first lookup. So
built-ins and plugins register through the same decorator, nothing heavy is imported before a name
is asked for, and an unknown name gets the same error everywhere: "unknown method 'lr'; known: ...
Did you mean 'lrr'?".
"""

from __future__ import annotations

import difflib
import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from prunebench.messages import LOGGER

T = TypeVar("T")
log = logging.getLogger(LOGGER)


def closest(name: str, valid: Sequence[str]) -> str | None:
    """The valid name a misspelt ``name`` most likely meant (every did-you-mean of the harness), or None."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


class UnknownName(LookupError):
    """A name no registry entry has; the message lists the known ones and the closest."""

    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        close = closest(name, known)
        hint = f" Did you mean {close!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known)}.{hint}")
        self.kind, self.name, self.known = kind, name, list(known)


class NameTaken(ValueError):
    """A second object registered under a name another one has."""


def _origin(obj: object) -> str:
    """Where an entry was defined: module.qualname of a class or function, else of its type."""
    source = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{source.__module__}.{source.__qualname__}"


def _same_entry(a: object, b: object) -> bool:
    """The same object, a class or function defined at the same place (a re-imported module), or equal values."""
    if a is b:
        return True
    if hasattr(a, "__qualname__") and hasattr(b, "__qualname__"):
        return _origin(a) == _origin(b)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values that cannot be compared are different entries
        return False


class Registry(Generic[T]):
    """Named plugins of one kind, loaded lazily: built-in modules first (``"pkg.*"``: every module of
    a package), then the entry-point group."""

    def __init__(self, kind: str, builtins: Sequence[str] = ()) -> None:
        self.kind = kind
        self.group = f"prunebench.{kind}s"
        self._builtins = tuple(builtins)
        self._entries: dict[str, T] = {}
        self._loaded = self._builtins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("imp")``."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name``; NameTaken if another object has the name (a plugin may not
        silently replace a built-in: its runs would carry the built-in's name and run ids)."""
        self._load_builtins()  # a plugin imported before the first lookup still meets the built-ins' names
        current = self._entries.get(name)
        if current is not None and not _same_entry(current, obj):
            raise NameTaken(f"{self.kind} {name!r} is registered already (by {_origin(current)}); "
                            f"{_origin(obj)} may not replace it: register it under another name")
        self._entries[name] = obj
        return obj

    def load(self) -> None:
        """Import the built-in modules and the group's entry points (once)."""
        if self._loaded:
            return
        self._loaded = True
        self._load_builtins()
        for ep in entry_points(group=self.group):
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001 - one broken plugin must not stop every command
                log.warning("plugin %s (%s) of entry-point group %s is left out: %s: %s", getattr(ep, "name", "?"),
                            getattr(ep, "value", "?"), self.group, type(e).__name__, e)

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self._builtins:
            if module.endswith(".*"):  # every module of a package: a new built-in needs no import list
                package = importlib.import_module(module[:-2])
                for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
                    importlib.import_module(info.name)
            else:
                importlib.import_module(module)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        self.load()
        if name not in self._entries:
            raise UnknownName(self.kind, name, self.names())
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
