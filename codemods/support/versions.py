"""Which Flask versions a project pins: requirements files, pyproject.toml (PEP 621 and
Poetry), Pipfile and setup.cfg. Versions are compared as tuples of integers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_refactor.project import Project

Version = tuple[int, ...]

REQUIREMENT_FILES = ("requirements.txt", "requirements.in", "pyproject.toml", "Pipfile", "setup.cfg", "setup.py")
# `Flask==2.2.5`, `flask[async] >=2.0,<3`, `"flask>=3.0"`, poetry `flask = "^2.2"`
_LINE = re.compile(r"""(?ix)(?:^|["'\s,\[])flask(?:\[[^\]]*\])?\s*(?:=\s*)?["']?\s*
                       ((?:(?:==|~=|>=|<=|!=|<|>|\^|~)\s*[0-9][0-9.*]*\s*,?\s*)+)""")
_CLAUSE = re.compile(r"(==|~=|>=|<=|!=|<|>|\^|~)\s*([0-9][0-9.*]*)")


@dataclass(frozen=True)
class Pin:
    spec: str  # as written, e.g. `==2.2.5`
    source: str  # path:line
    low: Version | None  # the oldest version allowed, if bounded
    high: Version | None  # versions below this are allowed (exclusive), if bounded

    def always_at_least(self, version: Version) -> bool:
        return self.low is not None and self.low >= version

    def always_below(self, version: Version) -> bool:
        return self.high is not None and self.high <= version

    def allows_at_least(self, version: Version) -> bool:
        return not self.always_below(version)


def parse_version(text: str) -> Version:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def format_version(version: Version) -> str:
    return ".".join(map(str, version))


def _bounds(spec: str) -> tuple[Version | None, Version | None]:
    low: Version | None = None
    high: Version | None = None

    def raise_low(v: Version) -> None:
        nonlocal low
        low = v if low is None or v > low else low

    def lower_high(v: Version) -> None:
        nonlocal high
        high = v if high is None or v < high else high

    for op, raw in _CLAUSE.findall(spec):
        wildcard = raw.endswith("*")
        version = parse_version(raw.rstrip(".*"))
        if not version:
            continue
        if op == "==" and not wildcard:
            raise_low(version)
            lower_high(version[:-1] + (version[-1] + 1,) if len(version) == 3 else version + (0, 1))
        elif op == "==":  # ==2.2.*
            raise_low(version)
            lower_high(version[:-1] + (version[-1] + 1,))
        elif op in (">=", ">"):
            raise_low(version)
        elif op == "<":
            lower_high(version)
        elif op == "<=":
            lower_high(version[:-1] + (version[-1] + 1,))
        elif op in ("~=", "~"):
            raise_low(version)
            # ~=2.2 allows 2.x; ~=2.2.1 and poetry's ~2.2 allow 2.2.x; ~2 allows 2.x
            keep = len(version) - 1 if op == "~=" else min(len(version), 2)
            keep = max(keep, 1)
            lower_high(version[:keep - 1] + (version[keep - 1] + 1,))
        elif op == "^":
            raise_low(version)
            first = next((i for i, part in enumerate(version) if part), len(version) - 1)
            lower_high(version[:first] + (version[first] + 1,))
    return low, high


def flask_pin(project: Project) -> Pin | None:
    """The first Flask requirement found in the project's requirement files."""
    def compute(proj: Project) -> Pin | None:
        candidates = [p for p in proj.other_paths() if _is_requirements(p)]
        candidates += [p for p in proj.paths() if p.endswith("setup.py")]
        for path in sorted(candidates, key=lambda p: (p.count("/"), p)):
            for number, line in enumerate((proj.text(path) or "").splitlines(), 1):
                stripped = line.split("#", 1)[0]
                match = _LINE.search(stripped)
                if match:
                    spec = re.sub(r"\s+", "", match.group(1)).rstrip(",")
                    low, high = _bounds(spec)
                    if low is not None or high is not None:
                        return Pin(spec, f"{path}:{number}", low, high)
        return None
    return project.fact("versions.flask-pin", compute)


def _is_requirements(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    in_requirements_dir = "requirements/" in f"/{path}" and name.endswith((".txt", ".in"))
    return (name in REQUIREMENT_FILES or in_requirements_dir
            or (name.startswith("requirements") and name.endswith((".txt", ".in"))))
