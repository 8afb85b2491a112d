"""Data flow of a view body for `extract-services`.

Which statements of a view may leave it (no early return, no request-context use, only
names a services module can import), and for a run of such statements: the view's
values it reads (inputs, all definitely bound when the run starts), the values it
assigns that the view reads later (outputs, all definitely bound when it ends), and
every reason the move could change behaviour. All from libcst's scope metadata.
"""

from __future__ import annotations

import builtins
import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable, Iterator

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import BuiltinAssignment, BuiltinScope, GlobalScope, ImportAssignment, Scope

from flask_refactor.index import records_of
from flask_refactor.walk import WHITESPACE, ReadOnlyVisitor, SourceOrder, code_children, iter_nodes

from .support.cache import per_statement
from .support.flask import is_package, parameter_names
from .support.imports import ImportMap
from .support.views import REQUEST_READING_METHODS, is_request_bound

# Builtins that look at the calling frame: their answer changes when code moves.
FRAME_BUILTINS = frozenset({"locals", "vars", "globals", "eval", "exec", "super", "dir", "__import__"})
# Module attributes that differ between the views module and the services module.
MODULE_DUNDERS = frozenset({"__name__", "__file__", "__spec__", "__loader__", "__package__", "__doc__",
                            "__builtins__", "__path__", "__cached__", "__annotations__", "__dict__"})
# Code in these runs later, if at all, and names there are its own.
NESTED_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
# by exact class, for tests made on every node of a view (none of these has a subclass)
_NESTED_SCOPE_KINDS = frozenset(NESTED_SCOPES)
_BINDING_KINDS = frozenset({cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr, cst.WithItem, cst.For,
                            cst.CompFor})
# Statements binding a name to what is no value of the view's work: a region does not
# return these to the view (`ViewFlow.region`).
_NOT_VALUES = (cst.Import, cst.ImportFrom, cst.FunctionDef, cst.ClassDef)
# The proxies themselves: a local bound to one of these still reads the request.
PROXY_OBJECTS = frozenset({"flask.request", "flask.session", "flask.g", "flask.current_app",
                           "flask_login.current_user", "flask_jwt_extended.current_user"})


class Blocker:
    """Why code may not move, naming a line of the view: `make` gives (line, reason) when
    first asked. The line comes from positions, which render the view, and the blockers
    of a view whose code moves are never read."""

    __slots__ = ("_make", "_made")

    def __init__(self, make: Callable[[], tuple[int, str]]) -> None:
        self._make: Callable[[], tuple[int, str]] | None = make
        self._made: tuple[int, str] | None = None

    def _get(self) -> tuple[int, str]:
        if self._made is None:
            self._made, self._make = self._make(), None
        return self._made

    @property
    def line(self) -> int:
        return self._get()[0]

    @property
    def reason(self) -> str:
        return self._get()[1]

    def __repr__(self) -> str:
        return f"Blocker(line={self.line!r}, reason={self.reason!r})"


@dataclass
class GlobalUse:
    """A module-level name the moved code reads, and the import statements binding it."""

    name: str
    qualified: str
    imports: list[tuple[cst.Import | cst.ImportFrom, cst.ImportAlias]]


@dataclass
class ModuleFacts:
    """What the analysis needs to know about the views module and the project."""

    path: str
    module_name: str
    imports: ImportMap
    scopes: dict
    positions: dict
    # qualified name -> reason it may not move there (request-reading module, patched
    # by tests, import cycle); None when it may
    global_verdict: Callable[[str, str], str | None]
    _unique_scopes: list[Scope] | None = None

    def unique_scopes(self) -> list[Scope]:
        if self._unique_scopes is None:
            unique = {id(scope): scope for scope in self.scopes.values() if scope is not None}
            self._unique_scopes = list(unique.values())
        return self._unique_scopes


@dataclass
class Region:
    block: cst.IndentedBlock
    start: int
    stop: int
    inputs: list[str]
    outputs: list[str]
    globals: dict[str, GlobalUse]
    builtins_used: set[str]
    span: Callable[[], tuple[int, int]]  # (first line, last line): asked only to report
    # names the view imported before the run and the run reads: imported again in the
    # service (as the view does, where it runs) rather than passed to it
    local_imports: dict[str, tuple[cst.Import | cst.ImportFrom, cst.ImportAlias]] = field(default_factory=dict)

    @property
    def first_line(self) -> int:
        return self.span()[0]

    @property
    def statements(self) -> list[cst.BaseStatement]:
        return list(self.block.body[self.start:self.stop])


@dataclass
class _Candidate:
    block: cst.IndentedBlock
    start: int
    stop: int
    bound: frozenset[str]
    weight: int


@per_statement  # asked again for the statements of every region tried
def count_statements(node: cst.CSTNode) -> int:
    counter = _StatementCounter()
    counter.walk(node)
    return counter.count


@per_statement
def _work_weight(statement: cst.CSTNode) -> int:
    """What a statement adds to the size of a run: its statements (`count_statements`),
    but none for a binding of a literal (`items = []`, `page = None`), which moves no
    work: a run of such bindings and a log line is not worth a service."""
    if isinstance(statement, cst.SimpleStatementLine):
        return sum(0 if _binds_a_literal(small) else 1 for small in statement.body)
    return count_statements(statement)


def _binds_a_literal(small: cst.BaseSmallStatement) -> bool:
    if isinstance(small, cst.Assign):
        return _is_literal(small.value)
    if isinstance(small, cst.AnnAssign):
        return small.value is None or _is_literal(small.value)
    return False


def _is_literal(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString)):
        return True
    if isinstance(expr, cst.ConcatenatedString):  # (an f-string part computes)
        return _is_literal(expr.left) and _is_literal(expr.right)
    if isinstance(expr, cst.Name):
        return expr.value in ("None", "True", "False")
    if isinstance(expr, cst.UnaryOperation):
        return isinstance(expr.operator, cst.Minus) and _is_literal(expr.expression)
    if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
        return all(isinstance(element, cst.Element) and _is_literal(element.value) for element in expr.elements)
    if isinstance(expr, cst.Dict):
        return all(isinstance(element, cst.DictElement) and _is_literal(element.key) and _is_literal(element.value)
                   for element in expr.elements)
    return False


@per_statement
def _node_ids(statement: cst.CSTNode) -> frozenset[int]:
    """The ids of the nodes of a statement, itself included, but for whitespace and
    comments (no name is read or bound there)."""
    return frozenset(map(id, iter_nodes(statement, skip=WHITESPACE)))


class _StatementCounter(ReadOnlyVisitor):
    """Counts statements, small and compound, nested ones too. One `visit_<Class>` hook
    per statement class (set below) rather than an `on_visit` test of every node: a
    visitor with hooks only is not walked through whitespace."""

    def __init__(self) -> None:
        self.count = 0

    def _count(self, node: cst.CSTNode) -> None:
        self.count += 1


# (read off the MRO: `issubclass` against libcst's ABCs for each of its ~300 exports took
# a tenth of the import time of a run)
STATEMENT_CLASSES = tuple(
    value for value in vars(cst).values()
    if isinstance(value, type) and not inspect.isabstract(value)
    and (cst.BaseSmallStatement in value.__mro__ or cst.BaseCompoundStatement in value.__mro__))
for _statement_class in STATEMENT_CLASSES:
    setattr(_StatementCounter, f"visit_{_statement_class.__name__}", _StatementCounter._count)


# -- definite assignment ----------------------------------------------------------

def target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        names: set[str] = set()
        for element in target.elements:
            names |= target_names(element.value)
        return names
    return set()


def definitely_binds(stmt: cst.CSTNode) -> set[str]:
    """Names certainly bound once `stmt` completes normally (conservative)."""
    if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        names: set[str] = set()
        for small in stmt.body:
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    names |= target_names(target.target)
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                if not isinstance(small, cst.AnnAssign) or small.value is not None:
                    names |= target_names(small.target)
            elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                for alias in small.names:
                    if alias.asname:
                        names |= target_names(alias.asname.name)
                    else:
                        names.add((get_full_name_for_node(alias.name) or "").split(".")[0])
        return names
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return {stmt.name.value}
    if isinstance(stmt, cst.If) and stmt.orelse is not None:
        other = (definitely_binds(stmt.orelse) if isinstance(stmt.orelse, cst.If)
                 else block_binds(stmt.orelse.body))
        return block_binds(stmt.body) & other
    return set()  # loops, try, with (a context manager may swallow an exception): nothing certain


def block_binds(block: cst.BaseSuite) -> set[str]:
    names: set[str] = set()
    if isinstance(block, cst.SimpleStatementSuite):
        return definitely_binds(block)
    for stmt in block.body:
        names |= definitely_binds(stmt)
    return names


# -- the view -------------------------------------------------------------------

class ViewFlow:
    """One view function: its movable statements and the regions that may move."""

    def __init__(self, func: cst.FunctionDef, facts: ModuleFacts) -> None:
        self.func = func
        self.facts = facts
        self._scans: dict[int, _Scan] = {}  # id of a statement of `func` -> its scan
        self.scope: Scope = facts.scopes[func.body]
        # the order of the view's code, which positions also give, but by rendering it
        self._order = SourceOrder.of(func)
        self.accesses = {}
        self.view_reads: list[tuple[str, cst.CSTNode, Scope]] = []  # reads of the view's locals
        for scope in self._scopes_within():
            for access in scope.accesses:
                self.accesses[access.node] = access
                # a string annotation's access is its SimpleString: never evaluated in a body
                if isinstance(access.node, cst.Name) and any(ref.scope is self.scope for ref in access.referents):
                    self.view_reads.append((access.node.value, access.node, scope))
        self.view_reads.sort(key=lambda read: self._start(read[1]))
        self.assignments = sorted(((a.name, a.node) for a in self.scope.assignments),
                                  key=lambda item: self._start(item[1]))
        self.proxy_locals = self._proxy_locals()

    def _scopes_within(self) -> Iterator[Scope]:
        for scope in self.facts.unique_scopes():
            if _within(scope, self.scope):
                yield scope

    def _start(self, node: cst.CSTNode) -> float | tuple[int, int]:
        """A key that sorts the view's nodes by where they start."""
        if self._order is not None:
            start = self._order.start(node)
            return -1 if start is None else start
        pos = self.facts.positions.get(node)
        return (pos.start.line, pos.start.column) if pos else (0, 0)

    def _ends_before(self, node: cst.CSTNode, statement: cst.CSTNode) -> bool:
        """Whether `node` ends before `statement` starts (a node outside the view does)."""
        if self._order is not None:
            end = self._order.end(node)
            return end is None or end < self._order.start(statement)
        pos, first = self.facts.positions.get(node), self.facts.positions[statement]
        return pos is None or (pos.end.line, pos.end.column) <= (first.start.line, first.start.column)

    def line(self, node: cst.CSTNode) -> int:
        return self.facts.positions[node].start.line

    def blocker(self, node: cst.CSTNode, reason: Callable[[int], str]) -> Blocker:
        """A blocker at `node`'s line, whose `reason` is told that line."""
        return Blocker(lambda: (self.line(node), reason(self.line(node))))

    # -- view-wide refusals ---------------------------------------------------------
    def view_blockers(self) -> list[Blocker]:
        """What rules out every part of the view: `global`/`nonlocal` change what its
        names mean, `yield` makes it a generator whose body runs lazily. Read from the
        scans of its statements, which `candidates` asks for next."""
        return [blocker for stmt in self.func.body.body for blocker in self.scan(stmt).view_wide]

    # -- statements -----------------------------------------------------------------
    def scan(self, stmt: cst.CSTNode) -> "_Scan":
        """What one statement reads and what keeps it in the view. Asked again for every
        region tried that holds it: scanned once."""
        found = self._scans.get(id(stmt))
        if found is None:
            found = self._scans[id(stmt)] = _Scan(self, stmt)
        return found

    def candidates(self, min_weight: int) -> tuple[list[_Candidate], list[Blocker]]:
        """Maximal runs of movable statements in the body and in the branches of `if`s
        (never inside loops, `try` or `with`), largest first; and what blocks the rest."""
        runs: list[_Candidate] = []
        blockers: list[Blocker] = []
        docstring = self._docstring()
        for block, bound in self._blocks(self.func.body, frozenset(parameter_names(self.func))):
            current = set(bound)
            start = None
            weight = 0
            for index, stmt in enumerate(list(block.body) + [None]):
                movable = False
                if stmt is not None and stmt is not docstring:
                    scan = self.scan(stmt)
                    movable = not scan.blockers and not _is_trivial(stmt)
                    if block is self.func.body and not _is_final_return(block, index):
                        blockers.extend(scan.blockers)
                if movable:
                    if start is None:
                        start, weight, run_bound = index, 0, frozenset(current)
                    weight += _work_weight(stmt)
                elif start is not None:
                    if weight >= min_weight:
                        runs.append(_Candidate(block, start, index, run_bound, weight))
                    start = None
                if stmt is not None:
                    current |= definitely_binds(stmt)
        runs.sort(key=lambda c: (-c.weight, self._start(c.block.body[c.start])))
        return runs, blockers  # (repeated reasons are dropped where they are reported)

    def shrink(self, candidate: _Candidate, min_weight: int) -> list[_Candidate]:
        """The run without its last statement, and without its first: where a region
        fails its checks, a smaller one may pass them."""
        smaller = []
        body = candidate.block.body
        last = _work_weight(body[candidate.stop - 1])
        first = _work_weight(body[candidate.start])
        if candidate.stop - candidate.start > 1 and candidate.weight - last >= min_weight:
            smaller.append(_Candidate(candidate.block, candidate.start, candidate.stop - 1, candidate.bound,
                                      candidate.weight - last))
        if candidate.stop - candidate.start > 1 and candidate.weight - first >= min_weight:
            bound = candidate.bound | definitely_binds(body[candidate.start])
            smaller.append(_Candidate(candidate.block, candidate.start + 1, candidate.stop, frozenset(bound),
                                      candidate.weight - first))
        return smaller

    def _docstring(self) -> cst.BaseStatement | None:
        first = self.func.body.body[0] if self.func.body.body else None
        if (isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr)
                and isinstance(first.body[0].value, (cst.SimpleString, cst.ConcatenatedString))):
            return first
        return None

    def _blocks(self, block: cst.IndentedBlock, bound: frozenset[str]):
        yield block, bound
        current = set(bound)
        for stmt in block.body:
            if isinstance(stmt, cst.If):
                yield from self._if_blocks(stmt, frozenset(current))
            current |= definitely_binds(stmt)

    def _if_blocks(self, node: cst.If, bound: frozenset[str]):
        if isinstance(node.body, cst.IndentedBlock):
            yield from self._blocks(node.body, bound)
        if isinstance(node.orelse, cst.If):
            yield from self._if_blocks(node.orelse, bound)
        elif isinstance(node.orelse, cst.Else) and isinstance(node.orelse.body, cst.IndentedBlock):
            yield from self._blocks(node.orelse.body, bound)

    # -- a region ---------------------------------------------------------------------
    def region(self, candidate: _Candidate) -> Region | Blocker:
        stmts = list(candidate.block.body[candidate.start:candidate.stop])
        ids_by_statement = [_node_ids(stmt) for stmt in stmts]
        inside = set().union(*ids_by_statement)
        # where each name is first certainly bound inside the region: reads after that
        # see the region's own value, not the view's
        bound_at: dict[str, int] = {}
        for index, stmt in enumerate(stmts):
            for name in definitely_binds(stmt):
                bound_at.setdefault(name, index)

        def reads_view_value(name: str, node: cst.CSTNode) -> bool:
            index = next(i for i, ids in enumerate(ids_by_statement) if id(node) in ids)
            return index <= bound_at.get(name, len(stmts))

        def span() -> tuple[int, int]:
            return self.line(stmts[0]), self.facts.positions[stmts[-1]].end.line

        def lines() -> str:
            return "lines {}-{}".format(*span())

        def where(node: cst.CSTNode) -> str:
            if id(node) in inside:
                return "in"
            return "before" if self._ends_before(node, stmts[0]) else "after"

        assigned: dict[str, set[str]] = {}
        for name, node in self.assignments:
            assigned.setdefault(name, set()).add(where(node))
        reads_in: list[str] = []
        read_after: set[str] = set()
        for name, node, scope in self.view_reads:
            place = where(node)
            if place == "in":
                if name not in reads_in and reads_view_value(name, node):
                    reads_in.append(name)
                if scope is not self.scope and "after" in assigned.get(name, ()):
                    return self.blocker(node, lambda line: f"`{name}` is read by a function or lambda in "
                                        f"{lines()} and reassigned later in the view (late binding)")
            elif place == "after":
                read_after.add(name)
            elif scope is not self.scope and "in" in assigned.get(name, ()):
                return self.blocker(node, lambda line: f"`{name}` is assigned in {lines()} and read by a "
                                    f"function defined at line {line} (a closure)")
        assigned_in = [name for name, node in self.assignments if where(node) == "in"]
        inputs = [n for n in reads_in if assigned.get(n, set()) - {"in"}]
        outputs = list(dict.fromkeys(n for n in assigned_in if n in read_after))
        bound_by_region = set()
        for stmt in stmts:
            bound_by_region |= definitely_binds(stmt)
        for name in outputs:
            if name in bound_by_region:
                continue
            if name in candidate.bound:
                if name not in inputs:
                    inputs.append(name)
                continue
            return self.blocker(stmts[0], lambda line: f"`{name}` is assigned only conditionally in "
                                f"{lines()} and read after them")
        for name in inputs:
            if name not in candidate.bound:
                return self.blocker(stmts[0], lambda line: f"`{name}` may be unbound when line {line} runs")
        # a service that hands back what it imported (a module, the request proxy) or a
        # function or class it defined (a closure over the view's values) moves no work:
        # the view still does it where it uses them
        handed_back = {name: "imported" if isinstance(node, (cst.Import, cst.ImportFrom)) else "defined"
                       for name, node in self.assignments
                       if isinstance(node, _NOT_VALUES) and where(node) == "in"}
        for name in outputs:
            if name in handed_back:
                return self.blocker(stmts[0], lambda line: f"`{name}` is {handed_back[name]} in {lines()} "
                                    "and used after them")
        globals_used: dict[str, GlobalUse] = {}
        builtins_used: set[str] = set()
        for stmt in stmts:
            scan = self.scan(stmt)
            globals_used.update(scan.globals)
            builtins_used |= scan.builtins
        local_imports = self._imported_before(inputs, where)
        inputs = [name for name in inputs if name not in local_imports]
        return Region(candidate.block, candidate.start, candidate.stop, inputs, outputs, globals_used,
                      builtins_used, span, local_imports)

    def _imported_before(self, inputs: list[str], where: Callable[[cst.CSTNode], str]) -> dict:
        """The inputs that the view binds once, by an import before the run, in the
        order the view imports them."""
        found = {}
        for name, nodes in self._bindings.items():
            if name in inputs and len(nodes) == 1 and isinstance(nodes[0], (cst.Import, cst.ImportFrom)) \
                    and where(nodes[0]) == "before":
                alias = _alias_binding(nodes[0], name)
                if alias is not None:
                    found[name] = (nodes[0], alias)
        return found

    @functools.cached_property
    def _bindings(self) -> dict[str, list[cst.CSTNode]]:
        """Each name of the view to the nodes binding it, in the order of the view's code."""
        bindings: dict[str, list[cst.CSTNode]] = {}
        for name, node in self.assignments:
            bindings.setdefault(name, []).append(node)
        return bindings

    def _proxy_locals(self) -> set[str]:
        """The view's locals bound to a request-context proxy object (`user = current_user`)."""
        bindings: list[tuple[set[str], cst.BaseExpression]] = []
        for node in _walk_skipping_scopes(self.func.body):
            kind = type(node)  # (these classes have no subclasses: a class test is an identity test)
            if kind not in _BINDING_KINDS:
                continue
            if kind is cst.Assign:
                names = set().union(*(target_names(t.target) for t in node.targets))
                bindings.append((names, node.value))
            elif kind is cst.AnnAssign or kind is cst.AugAssign:
                if node.value is not None:
                    bindings.append((target_names(node.target), node.value))
            elif kind is cst.NamedExpr:
                bindings.append((target_names(node.target), node.value))
            elif kind is cst.WithItem:
                if node.asname is not None:
                    bindings.append((target_names(node.asname.name), node.item))
            else:  # For, CompFor
                bindings.append((target_names(node.target), node.iter))
        tainted: set[str] = set()
        changed = True
        while changed:
            changed = False
            for names, value in bindings:
                if not names <= tainted and self._passes_proxy(value, tainted):
                    tainted |= names
                    changed = True
        return tainted

    def _passes_proxy(self, expr: cst.CSTNode, tainted: set[str]) -> bool:
        if self._is_proxy(expr, tainted):
            return True
        if isinstance(expr, (cst.Attribute, cst.Subscript)) and self._is_proxy(expr.value, tainted):
            # `request.form`, `session["id"]`: the value read, not the proxy
            rest = expr.slice if isinstance(expr, cst.Subscript) else ()
            return any(self._passes_proxy(child, tainted) for child in rest)
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and self._is_proxy(expr.func.value, tainted):
            return any(self._passes_proxy(arg, tainted) for arg in expr.args)
        return any(self._passes_proxy(child, tainted) for child in code_children(expr))

    def _is_proxy(self, expr: cst.CSTNode, tainted: set[str]) -> bool:
        if isinstance(expr, cst.Name) and expr.value in tainted:
            return True
        if isinstance(expr, (cst.Name, cst.Attribute)):
            if self.facts.imports.resolve(expr) in PROXY_OBJECTS and self._is_global(expr):
                return True
            return self.imported_within(expr) in PROXY_OBJECTS
        return False

    def imported_within(self, expr: cst.BaseExpression) -> str | None:
        """The qualified name `expr` (a name or dotted name) stands for when its head is
        bound only by imports made inside the view (`from flask import request` in a
        view of a blueprint factory), else None. (Module-level imports: `facts.imports`.)"""
        head = expr
        while isinstance(head, cst.Attribute):
            head = head.value
        access = self.accesses.get(head)
        if access is None or not access.referents:
            return None
        targets = {self._import_map(r.node).resolve(expr)
                   if isinstance(r, ImportAssignment) and _within(r.scope, self.scope) else None
                   for r in access.referents}
        return targets.pop() if len(targets) == 1 else None

    def _import_map(self, stmt: cst.Import | cst.ImportFrom) -> ImportMap:
        """What one import statement of the view binds, as `facts.imports` maps the module's."""
        records = records_of(stmt, module_level=True)  # (`from_index` maps only those)
        return ImportMap.from_index(records, self.facts.module_name, is_package(self.facts.path))

    def _is_global(self, expr: cst.BaseExpression) -> bool:
        base = expr
        while isinstance(base, cst.Attribute):
            base = base.value
        access = self.accesses.get(base)
        return access is not None and any(isinstance(r.scope, GlobalScope) for r in access.referents)


def _within(scope: Scope | None, ancestor: Scope) -> bool:
    """Whether `scope` is `ancestor` or nested in it."""
    while scope is not None and not isinstance(scope, (GlobalScope, BuiltinScope)):
        if scope is ancestor:
            return True
        scope = scope.parent
    return False


def _is_final_return(block: cst.IndentedBlock, index: int) -> bool:
    """The view's last statement returning the response: no reason to mention."""
    stmt = block.body[index]
    return (index == len(block.body) - 1 and isinstance(stmt, cst.SimpleStatementLine)
            and isinstance(stmt.body[0], cst.Return))


def _is_trivial(stmt: cst.BaseStatement) -> bool:
    """`pass`, `...` or a bare string: nothing worth moving on its own."""
    return (isinstance(stmt, cst.SimpleStatementLine)
            and all(isinstance(s, cst.Pass) or (isinstance(s, cst.Expr) and isinstance(
                s.value, (cst.SimpleString, cst.ConcatenatedString, cst.Ellipsis))) for s in stmt.body))


def _walk_skipping_scopes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The nodes under `node`, in libcst's order, not entering nested functions, classes
    and lambdas, nor whitespace and comments."""
    nodes = iter_nodes(node, descend=lambda n: n is node or n.__class__ not in _NESTED_SCOPE_KINDS, skip=WHITESPACE)
    next(nodes)  # `node` itself
    return nodes


class _Scan(ReadOnlyVisitor):
    """Why one statement cannot leave the view (empty `blockers`: it can), and the
    module-level names and builtins it reads."""

    def __init__(self, flow: ViewFlow, stmt: cst.CSTNode) -> None:
        self.flow = flow
        self.facts = flow.facts
        self.blockers: list[Blocker] = []
        self.view_wide: list[Blocker] = []  # blockers that rule out the whole view
        self.globals: dict[str, GlobalUse] = {}
        self.builtins: set[str] = set()
        self.scope_depth = 0  # nested def/lambda/class: their return/yield stay theirs
        self.loop_depth = 0
        self.handled: set[int] = set()
        self.walk(stmt)

    def block(self, node: cst.CSTNode, reason: str, view_wide: bool = False) -> None:
        where = " inside a loop" if self.loop_depth else ""
        blocker = self.flow.blocker(node, lambda line: f"{reason}{where} at line {line}")
        self.blockers.append(blocker)
        if view_wide:
            self.view_wide.append(blocker)

    # scopes and loops
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope_depth += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scope_depth -= 1

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.scope_depth += 1

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self.scope_depth -= 1

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scope_depth += 1

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.scope_depth -= 1

    def visit_For(self, node: cst.For) -> None:
        self.loop_depth += 1

    def leave_For(self, original_node: cst.For) -> None:
        self.loop_depth -= 1

    def visit_While(self, node: cst.While) -> None:
        self.loop_depth += 1

    def leave_While(self, original_node: cst.While) -> None:
        self.loop_depth -= 1

    # control flow that would escape the moved code
    def visit_Return(self, node: cst.Return) -> None:
        if not self.scope_depth:
            self.block(node, "early return")

    def visit_Yield(self, node: cst.Yield) -> None:
        if not self.scope_depth:
            self.block(node, "yield (a generator view)", view_wide=True)

    def visit_Break(self, node: cst.Break) -> None:
        if not self.loop_depth and not self.scope_depth:
            self.block(node, "`break` leaving the region")

    def visit_Continue(self, node: cst.Continue) -> None:
        if not self.loop_depth and not self.scope_depth:
            self.block(node, "`continue` leaving the region")

    def visit_Global(self, node: cst.Global) -> None:
        self.block(node, "`global` statement", view_wide=not self.scope_depth)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.block(node, "`nonlocal` statement", view_wide=not self.scope_depth)

    def visit_Del(self, node: cst.Del) -> None:
        self.block(node, "`del`")

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in REQUEST_READING_METHODS:
            self.block(node, f"calls .{node.func.attr.value}(), which reads the request,")

    # names
    def visit_Attribute(self, node: cst.Attribute) -> None:
        base = node.value
        while isinstance(base, cst.Attribute):
            base = base.value
        if id(base) in self.handled or not isinstance(base, cst.Name):
            return
        qualified = self._global_import(base)
        if qualified:
            qualified = self.facts.imports.resolve(node) or qualified
        else:
            qualified = self.flow.imported_within(node)
        if qualified and is_request_bound(qualified):
            self.handled.add(id(base))
            self.block(node, _request_use(get_full_name_for_node(node), qualified))

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self.handled:
            return
        access = self.flow.accesses.get(node)
        if access is None:
            return
        name = node.value
        referents = access.referents
        if not referents or all(isinstance(r, BuiltinAssignment) for r in referents):
            if name in MODULE_DUNDERS:
                self.block(node, f"reads the module's `{name}`")
            elif name in FRAME_BUILTINS:
                self.block(node, f"calls `{name}`, which depends on where it runs,")
            elif self.facts.imports.star_modules:
                star = ", ".join(self.facts.imports.star_modules)
                self.block(node, f"`{name}` may come from `from {star} import *`")
            elif referents or hasattr(builtins, name):
                self.builtins.add(name)
            else:
                self.block(node, f"`{name}` is not defined in {self.facts.path} (star import?)")
            return
        if all(isinstance(r, ImportAssignment) for r in referents):
            qualified = self.flow.imported_within(node)  # (module-level imports: `_global`)
            if qualified and is_request_bound(qualified):
                self.block(node, _request_use(name, qualified))
                return
            # what a module-level import may not bring into the services module, an
            # import inside the view may not either (a helper that reads the request)
            verdict = qualified and self.facts.global_verdict(name, qualified)
            if verdict:
                self.block(node, f"uses `{name}`, {verdict},")
                return
        if any(r.scope is self.flow.scope for r in referents):
            if name in self.flow.proxy_locals:
                self.block(node, f"`{name}` holds a request-context proxy and is read")
            return
        if all(self._nested_in_view(r.scope) for r in referents):
            return
        if all(isinstance(r.scope, GlobalScope) for r in referents):
            self._global(node, name, referents)
            return
        self.block(node, f"uses `{name}` from the enclosing function")

    def _nested_in_view(self, scope: Scope) -> bool:
        return _within(scope, self.flow.scope)

    def _global_import(self, name: cst.Name) -> str | None:
        access = self.flow.accesses.get(name)
        if access is None or not access.referents:
            return None
        if all(isinstance(r, ImportAssignment) and isinstance(r.scope, GlobalScope) for r in access.referents):
            return self.facts.imports.resolve(name)
        return None

    def _global(self, node: cst.Name, name: str, referents) -> None:
        if name in MODULE_DUNDERS:
            self.block(node, f"reads the module's `{name}`")
            return
        if not all(isinstance(r, ImportAssignment) for r in referents):
            self.block(node, f"uses `{name}`, defined in {self.facts.path} itself")
            return
        qualified = self.facts.imports.resolve(node)
        if qualified is None:
            self.block(node, f"uses `{name}`, whose import cannot be resolved")
            return
        if is_request_bound(qualified):
            self.block(node, _request_use(name, qualified))
            return
        verdict = self.facts.global_verdict(name, qualified)
        if verdict:
            self.block(node, f"uses `{name}`, {verdict},")
            return
        statements = []
        for ref in referents:
            alias = _alias_binding(ref.node, name)
            if alias is None:
                self.block(node, f"uses `{name}`, bound by an unusual import")
                return
            statements.append((ref.node, alias))
        self.globals[name] = GlobalUse(name, qualified, statements)


def _request_use(text: str, qualified: str) -> str:
    if any(qualified == proxy or qualified.startswith(proxy + ".") for proxy in PROXY_OBJECTS):
        return f"reads `{text}`"
    return f"uses `{text}` from {qualified.split('.')[0]}"


def routine(blocker: Blocker) -> bool:
    """A request read or response call outside loops: what a view is expected to keep."""
    return blocker.reason.startswith(("reads `", "uses `")) and "from flask" in blocker.reason or (
        blocker.reason.startswith("reads `") and "inside a loop" not in blocker.reason)


def _alias_binding(stmt: cst.CSTNode, name: str) -> cst.ImportAlias | None:
    if not isinstance(stmt, (cst.Import, cst.ImportFrom)) or isinstance(stmt.names, cst.ImportStar):
        return None
    for alias in stmt.names:
        if alias.asname is not None:
            bound = alias.asname.name.value if isinstance(alias.asname.name, cst.Name) else None
        else:
            full = get_full_name_for_node(alias.name) or ""
            bound = full.split(".")[0] if isinstance(stmt, cst.Import) else full
        if bound == name:
            return alias
    return None
