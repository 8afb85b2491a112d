"""Finding codemods: the built-in ones (one module each in `flask_refactor.codemods`)
and those other distributions register under the `flask_refactor.codemods` entry-point
group.

For tests and local experiments, `FLASK_REFACTOR_PLUGINS=module:Class,other.module`
(comma-separated, importable from sys.path) loads extra codemods without installing a
distribution; a bare module contributes every codemod it defines."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points

from .codemod import Codemod

ENTRY_POINT_GROUP = "flask_refactor.codemods"
PLUGINS_ENV = "FLASK_REFACTOR_PLUGINS"


class RegistryError(Exception):
    pass


@lru_cache(maxsize=1)
def all_codemods() -> dict[str, type[Codemod]]:
    """Every known codemod by name, in `--all` order."""
    found: dict[str, type[Codemod]] = {}
    for cls in _builtin() + _plugins():
        other = found.get(cls.name)
        if other is not None and other is not cls:
            raise RegistryError(f"two codemods are named {cls.name!r}: {_where(other)} and {_where(cls)}")
        found[cls.name] = cls
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def get(name: str) -> type[Codemod]:
    codemods = all_codemods()
    if name not in codemods:
        known = ", ".join(codemods) or "none"
        raise RegistryError(f"unknown codemod {name!r} (known: {known})")
    return codemods[name]


def _builtin() -> list[type[Codemod]]:
    try:
        package = importlib.import_module("flask_refactor.codemods")
    except ModuleNotFoundError:
        raise RegistryError("flask_refactor.codemods is missing: this flask_refactor is the source tree, not an "
                            "installed copy; install it (pip install -e .) or run from another directory") from None
    classes = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue  # helpers and shared knowledge live in _private modules / subpackages
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        classes.extend(_codemods_in(module))
    return classes


def _plugins() -> list[type[Codemod]]:
    classes = []
    for name, value, load in _plugin_sources():
        try:
            loaded = load()
        except Exception as exc:  # a broken plugin must not take the tool down
            raise RegistryError(f"cannot load codemod plugin {name!r} ({value}): {exc}") from None
        if inspect.ismodule(loaded):
            classes.extend(_codemods_in(loaded))
        elif inspect.isclass(loaded) and issubclass(loaded, Codemod):
            classes.append(loaded)
        else:
            raise RegistryError(f"codemod plugin {name!r} ({value}) is not a Codemod class or module")
    return classes


def _plugin_sources():
    """(name, spec, loader) for each entry point, then each FLASK_REFACTOR_PLUGINS spec."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        yield ep.name, ep.value, ep.load
    for spec in (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(",")):
        if spec:
            yield PLUGINS_ENV, spec, lambda spec=spec: _load_spec(spec)


def _load_spec(spec: str):
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def _codemods_in(module) -> list[type[Codemod]]:
    return [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Codemod)
        and obj.__module__ == module.__name__ and "name" in vars(obj)
    ]


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
