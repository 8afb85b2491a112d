"""What names a module imports, resolved to qualified names, and adding imports.

A cheap alternative to libcst's QualifiedNameProvider (full scope analysis costs ~10x a
parse): module-level imports, including those nested in `try`/`if` at module level, map
local names to dotted names; `resolve` follows `Name`/`Attribute` chains through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.index import ImportRecord
from flask_refactor.walk import ReadOnlyVisitor


def module_level_statements(module: cst.Module):
    """Simple statements executed at import time, looking inside if/try/with blocks."""
    def walk(body):
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                yield stmt
            elif isinstance(stmt, (cst.If, cst.Try, cst.With)):
                blocks = [stmt.body]
                if isinstance(stmt, cst.If) and stmt.orelse is not None:
                    blocks.append(stmt.orelse.body if isinstance(stmt.orelse, cst.Else) else cst.IndentedBlock(body=[stmt.orelse]))
                if isinstance(stmt, cst.Try):
                    blocks.extend(h.body for h in stmt.handlers)
                    if stmt.orelse:
                        blocks.append(stmt.orelse.body)
                    if stmt.finalbody:
                        blocks.append(stmt.finalbody.body)
                for block in blocks:
                    yield from walk(block.body if isinstance(block, cst.IndentedBlock) else [block])
    yield from walk(module.body)


def resolve_relative(module_name: str | None, level: int, target: str | None, is_package: bool = False) -> str | None:
    if level == 0:
        return target
    if not module_name:
        return None
    parts = module_name.split(".")
    base = parts if is_package else parts[:-1]
    if level - 1 > len(base):
        return None
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])]) or None


def imported_modules(record, module_name: str | None, is_package: bool = False) -> list[str]:
    """What an index import record may import, longest first: `from a.b import c` ->
    [`a.b.c`, `a.b`, `a`] (c may be a module or a name; importing a.b runs a too)."""
    if record.level == 0 and record.module is None:  # `import a.b`
        dotted = record.name
    else:
        source = resolve_relative(module_name, record.level, record.module, is_package)
        if not source:
            return []
        dotted = source if record.name == "*" else f"{source}.{record.name}"
    parts = dotted.split(".")
    return [".".join(parts[:cut]) for cut in range(len(parts), 0, -1)]


def import_records(module: cst.Module, everywhere: bool = False) -> list[ImportRecord]:
    """The project index's import records, from a libcst tree: the imports that run at
    module level (what `ImportMap` maps), or with `everywhere` every import of the file."""
    if not everywhere:
        return [record for line in module_level_statements(module) for small in line.body
                for record in _records_of(small, module_level=True)]
    found: list[ImportRecord] = []

    class Imports(ReadOnlyVisitor):
        def visit_Import(self, node: cst.Import) -> None:
            found.extend(_records_of(node, module_level=False))

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            found.extend(_records_of(node, module_level=False))

    Imports().walk(module)
    return found


def _records_of(small: cst.CSTNode, module_level: bool) -> list[ImportRecord]:
    if isinstance(small, cst.Import):
        return [ImportRecord(0, None, get_full_name_for_node(alias.name),
                             alias.asname.name.value if alias.asname else None, 0, module_level)
                for alias in small.names]
    if isinstance(small, cst.ImportFrom):
        source = get_full_name_for_node(small.module) if small.module else None
        if isinstance(small.names, cst.ImportStar):
            return [ImportRecord(len(small.relative), source, "*", None, 0, module_level)]
        return [ImportRecord(len(small.relative), source, get_full_name_for_node(alias.name),
                             alias.asname.name.value if alias.asname else None, 0, module_level)
                for alias in small.names]
    return []


@dataclass
class ImportMap:
    names: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    star_modules: list[str] = field(default_factory=list)  # `from x import *`

    @classmethod
    def of(cls, module: cst.Module, module_name: str | None = None, is_package: bool = False) -> "ImportMap":
        return cls.from_index(import_records(module), module_name, is_package)

    @classmethod
    def from_index(cls, records, module_name: str | None = None, is_package: bool = False) -> "ImportMap":
        """The map of a file's import records (from the project index: no libcst parse)."""
        result = cls()
        for record in records:
            if not record.module_level:
                continue
            if record.level == 0 and record.module is None:  # `import a.b [as c]`
                if record.asname:
                    result.names[record.asname] = record.name
                else:
                    top = record.name.split(".")[0]
                    result.names[top] = top
                continue
            source = resolve_relative(module_name, record.level, record.module, is_package)
            if source is None:
                continue
            if record.name == "*":
                result.star_modules.append(source)
            else:
                result.names[record.asname or record.name] = f"{source}.{record.name}"
        return result

    def resolve(self, node: cst.BaseExpression | None) -> str | None:
        """`f.Flask` -> `flask.Flask` when `import flask as f`; None if not imported."""
        if node is None:
            return None
        dotted = get_full_name_for_node(node)
        if not dotted:
            return None
        head, _, rest = dotted.partition(".")
        if head not in self.names:
            return None
        base = self.names[head]
        return f"{base}.{rest}" if rest else base

    def local_names_for(self, qualified: str) -> list[str]:
        """Every expression text that refers to `qualified` in this module."""
        found = []
        for local, target in self.names.items():
            if target == qualified:
                found.append(local)
            elif qualified.startswith(target + "."):
                found.append(local + qualified[len(target):])
        return found


def add_import(module: cst.Module, source: str, name: str | None = None, asname: str | None = None) -> cst.Module:
    """Add `from source import name [as asname]` (or `import source`) unless present."""
    return add_imports(module, [(source, name, asname)])


def add_imports(module: cst.Module, wanted: list[tuple[str, str | None, str | None]]) -> cst.Module:
    """Add each (source, name, asname) import unless present, in one pass.

    Uses libcst's AddImportsVisitor, which merges into an existing `from source import`
    and places new imports after the module docstring and `__future__` imports. Imported
    here, when first needed: `libcst.codemod` brings `libcst.matchers`, whose import alone
    costs a fifth of a second, on runs that may have nothing to add."""
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor

    context = CodemodContext()
    for source, name, asname in wanted:
        AddImportsVisitor.add_needed_import(context, source, name, asname)
    return AddImportsVisitor(context).transform_module(module)
