"""Settings from `[tool.flask-refactor]` in the nearest pyproject.toml; CLI flags override.

    [tool.flask-refactor]
    codemods = ["app-factory", "teardown"]   # default selection when no --codemod/--all
    exclude = ["legacy/*", "*_pb2.py"]        # gitignore-style patterns
    jobs = 4

    [tool.flask-refactor.extract-services]    # options of one codemod
    max-statements = 30
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOWN_KEYS = {"codemods", "exclude", "jobs"}


class ConfigError(Exception):
    pass


@dataclass
class Settings:
    source: Path | None = None
    codemods: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    jobs: int | None = None
    codemod_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys other commands own (e.g. audit)


def find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    directory = start if start.is_dir() else start.parent
    for candidate in [directory, *directory.parents]:
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def load(start: Path, codemod_names: set[str], extra_keys: set[str] = frozenset()) -> Settings:
    path = find_pyproject(start)
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from None
    table = data.get("tool", {}).get("flask-refactor")
    if table is None:
        return Settings(source=path)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.flask-refactor] must be a table")
    settings = Settings(source=path)
    for key, value in table.items():
        where = f"{path}: [tool.flask-refactor] {key}"
        if key in codemod_names:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: codemod options must be a table")
            settings.codemod_options[key] = {k.replace("-", "_"): v for k, v in value.items()}
        elif key == "codemods":
            settings.codemods = _string_list(value, where)
        elif key == "exclude":
            settings.exclude = _string_list(value, where)
        elif key == "jobs":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
            settings.jobs = value
        elif key in extra_keys:
            settings.extra[key] = value
        else:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(KNOWN_KEYS | extra_keys))}, "
                              "or a codemod name for its options)")
    return settings


def _string_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return value
