"""What names a module imports, resolved to qualified names, and adding imports.

A cheap alternative to libcst's QualifiedNameProvider (full scope analysis costs ~10x a
parse): module-level imports, including those nested in `try`/`if` at module level, map
local names to dotted names; `resolve` follows `Name`/`Attribute` chains through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.index import ImportRecord, records_of
from flask_refactor.snippets import parse_statement, parsing_config
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


def bound_name(record, module_name: str | None, is_package: bool = False) -> tuple[str, str] | None:
    """(the local name an index import record binds, the qualified name it stands for):
    `import a.b` -> (`a`, `a`), `import a.b as c` -> (`c`, `a.b`), `from .x import y as z`
    in `pkg.m` -> (`z`, `pkg.x.y`); a star import gives (`*`, the module); None when a
    relative import reaches above the top package."""
    if record.level == 0 and record.module is None:  # `import a.b [as c]`
        if record.asname:
            return record.asname, record.name
        top = record.name.split(".")[0]
        return top, top
    source = resolve_relative(module_name, record.level, record.module, is_package)
    if source is None:
        return None
    if record.name == "*":
        return "*", source
    return record.asname or record.name, f"{source}.{record.name}"


def binds_module(record, module_name: str | None, is_package: bool, target: str) -> bool:
    """Whether an index import record binds a local name to the module `target` or to a
    name in it: `import target [as t]`, `import target.sub` (binds `target`), `from
    target import x`, `from parent import last` where `parent.last` is `target`."""
    if record.level == 0 and record.module is None:  # `import a.b [as c]`
        return (record.name if record.asname else record.name.split(".")[0]) == target
    source = resolve_relative(module_name, record.level, record.module, is_package)
    return source is not None and (source == target or f"{source}.{record.name}" == target)


def head_name(node: cst.CSTNode) -> str | None:
    """The first part of `get_full_name_for_node(node)` (`a` for `a.b().c`), found
    without building the name; "None" where that name starts with None (an attribute of
    something unnamed), None where there is no name."""
    through_attribute = False
    while True:
        if isinstance(node, cst.Name):
            return node.value
        if isinstance(node, cst.Attribute):
            node, through_attribute = node.value, True
        elif isinstance(node, cst.Call):
            node = node.func
        elif isinstance(node, cst.Subscript):
            node = node.value
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            node = node.name
        elif isinstance(node, cst.Decorator):
            node = node.decorator
        else:
            return "None" if through_attribute else None


def last_name(node: cst.CSTNode) -> str | None:
    """The last part of `get_full_name_for_node(node)` (`c` for `a.b().c`), without
    building the name."""
    while isinstance(node, (cst.Call, cst.Subscript)):
        node = node.func if isinstance(node, cst.Call) else node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return node.value if isinstance(node, cst.Name) else None


def import_records(module: cst.Module, everywhere: bool = False) -> list[ImportRecord]:
    """The project index's import records, from a libcst tree: the imports that run at
    module level (what `ImportMap` maps), or with `everywhere` every import of the file."""
    if not everywhere:
        return [record for line in module_level_statements(module) for small in line.body
                for record in records_of(small, module_level=True)]
    found: list[ImportRecord] = []

    class Imports(ReadOnlyVisitor):
        def visit_Import(self, node: cst.Import) -> None:
            found.extend(records_of(node, module_level=False))

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            found.extend(records_of(node, module_level=False))

    Imports().walk(module)
    return found


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
            bound = bound_name(record, module_name, is_package) if record.module_level else None
            if bound is None:
                continue
            local, qualified = bound
            if local == "*":
                result.star_modules.append(qualified)
            else:
                result.names[local] = qualified
        return result

    def resolve(self, node: cst.BaseExpression | None) -> str | None:
        """`f.Flask` -> `flask.Flask` when `import flask as f`; None if not imported."""
        if node is None or head_name(node) not in self.names:
            return None  # (the head decides: no dotted name need be built for the rest)
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

    This is what libcst's AddImportsVisitor does, rewritten here because importing
    `libcst.codemod` brings `libcst.matchers`, whose import alone costs 0.17 s: a fifth
    of a whole run on a small app. As there: only the module's first block of
    one-import lines (after a docstring) counts as present; a name from a module that
    block already imports from joins that `from` line; the rest go after the block
    (`__future__` ones before it), one line per module, names sorted; the statement
    after them gets a blank line. `tests/test_imports.py` holds it to AddImportsVisitor's
    output on real code. Sources are absolute (none of ours is relative)."""
    plan = _ImportPlan(wanted)
    start = 1 if _opens_with_docstring(module) else 0
    end = start
    while end < len(module.body) and _single_import(module.body[end]) is not None:
        end += 1
    top = [_single_import(stmt) for stmt in module.body[start:end]]
    plan.drop_present(top)
    if plan.empty():
        return module
    body = list(module.body)
    for index, small in enumerate(top, start):
        if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar) and not small.relative:
            joining = plan.take_names(get_full_name_for_node(small.module))
            if joining:
                body[index] = body[index].with_changes(body=[small.with_changes(names=[*joining, *small.names])])
    if plan.empty():
        return module.with_changes(body=body)
    after = body[end:]
    if after:
        first = after[0]
        if not first.leading_lines or first.leading_lines[0].comment is not None:
            after[0] = first.with_changes(leading_lines=(cst.EmptyLine(), *first.leading_lines))
    config = parsing_config(module)
    futures, others = plan.new_lines()
    return module.with_changes(body=(
        *body[:start],
        *(parse_statement(line, config=config) for line in futures),
        *body[start:end],
        *(parse_statement(line, config=config) for line in others),
        *after,
    ))


def _opens_with_docstring(module: cst.Module) -> bool:
    """A docstring (or a `__strict__ = ...` flag) comes first: imports never go above it."""
    if not module.body or not isinstance(module.body[0], cst.SimpleStatementLine) or len(module.body[0].body) != 1:
        return False
    first = module.body[0].body[0]
    if isinstance(first, cst.Expr):
        return isinstance(first.value, cst.SimpleString)
    return (isinstance(first, cst.Assign) and len(first.targets) == 1
            and isinstance(first.targets[0].target, cst.Name) and first.targets[0].target.value == "__strict__")


def _single_import(stmt: cst.BaseStatement) -> cst.Import | cst.ImportFrom | None:
    """The import of a line holding one import and nothing else."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
            and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom)):
        return stmt.body[0]
    return None


class _ImportPlan:
    """The imports still to add: plain modules, aliased modules, and names per module
    (with or without an alias)."""

    def __init__(self, wanted: list[tuple[str, str | None, str | None]]) -> None:
        self.modules = {source for source, name, asname in wanted if name is None and asname is None}
        self.module_aliases = {source: asname for source, name, asname in wanted if name is None and asname}
        self.names: dict[str, set[str]] = {}
        self.aliased: dict[str, list[tuple[str, str]]] = {}
        for source, name, asname in sorted(wanted, key=lambda item: item[0]):
            if name is not None and asname is None:
                self.names.setdefault(source, set()).add(name)
            elif name is not None:
                self.aliased.setdefault(source, []).append((name, asname))

    def empty(self) -> bool:
        return not (self.modules or self.module_aliases or self.names or self.aliased)

    def drop_present(self, imports: list[cst.Import | cst.ImportFrom]) -> None:
        present_names: dict[str, set[str]] = {}
        present_aliases: dict[str, str] = {}  # module -> its last alias, as libcst keeps them
        for small in imports:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    if alias.asname is None:
                        self.modules.discard(alias.evaluated_name)
                    else:
                        present_aliases[alias.evaluated_name] = alias.evaluated_alias
                continue
            if small.relative:
                continue  # its module is not known without the package
            source = get_full_name_for_node(small.module)
            if isinstance(small.names, cst.ImportStar):
                present_names[source] = {"*"}
                continue
            for alias in small.names:
                pair = (alias.evaluated_name, alias.evaluated_alias)
                if alias.asname is not None and pair in self.aliased.get(source, ()):
                    self.aliased[source].remove(pair)
                    if not self.aliased[source]:
                        del self.aliased[source]
            plain = {alias.evaluated_name for alias in small.names if alias.asname is None}
            if plain and "*" not in present_names.get(source, ()):
                present_names.setdefault(source, set()).update(plain)
        for source, asname in present_aliases.items():
            if self.module_aliases.get(source) == asname:
                del self.module_aliases[source]
        for source, names in present_names.items():
            if source in self.names:
                self.names[source] = set() if "*" in names else self.names[source] - names
                if not self.names[source]:
                    del self.names[source]

    def take_names(self, source: str) -> list[cst.ImportAlias]:
        """The names to add to an existing `from source import` line (then not added again)."""
        plain, aliased = sorted(self.names.pop(source, ())), sorted(self.aliased.pop(source, ()))
        return [*(cst.ImportAlias(name=cst.Name(name)) for name in plain),
                *(cst.ImportAlias(name=cst.Name(name), asname=cst.AsName(name=cst.Name(asname)))
                  for name, asname in aliased)]

    def new_lines(self) -> tuple[list[str], list[str]]:
        """(`from __future__` lines, the other lines), as they are to be written."""
        by_source: dict[str, list[tuple[str, str | None]]] = {}
        for source, pairs in self.aliased.items():
            by_source.setdefault(source, []).extend(pairs)
        for source, names in sorted(self.names.items()):
            by_source.setdefault(source, []).extend((name, None) for name in names)
        froms = {source: "from {} import {}".format(source, ", ".join(
                     name if asname is None else f"{name} as {asname}" for name, asname in sorted(pairs)))
                 for source, pairs in by_source.items()}
        others = [*(f"import {source}" for source in sorted(self.modules)),
                  *(f"import {source} as {asname}" for source, asname in self.module_aliases.items()),
                  *(line for source, line in froms.items() if source != "__future__")]
        return [line for source, line in froms.items() if source == "__future__"], others
