"""Where each node of a libcst tree starts and ends: what libcst's PositionProvider
gives, at a fraction of its cost.

PositionProvider renders the module through a codegen state that records positions. Its
state splits every token with a regular expression, allocates two position objects per
node and opens a generator-based context manager per syntactic node; for the small
modules codemods look at, that made positions the most expensive question a run asked
(more than the parse). This state keeps the same rules (a node's range is its
syntactic range where libcst records one, else the range of everything it rendered)
with plain tuples, a newline test before any split, and a class-based context manager;
ranges become `CodeRange`s only when asked for. tests/test_positions.py checks every
node of real packages against PositionProvider.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Mapping

import libcst as cst
from libcst import CSTNode
from libcst._nodes.expression import _BaseParenthesizedNode  # see `_parenthesize`
from libcst._nodes.internal import CodegenState  # the codegen protocol PositionProvider uses too
from libcst.metadata import CodePosition, CodeRange

from .walk import WHITESPACE as UNPLACED  # no range is kept for these: nothing is reported at them
from .walk import SHARED as _SHARED
from .walk import ModuleLayout, code_layout

_NEWLINE = re.compile(r"\r\n?|\n")  # libcst's own definition of a line break

_Range = tuple[int, int, int, int]  # start line, start column, end line, end column


class _PositionState(CodegenState):
    """Follows the line and column each token moves to. Tokens are still collected:
    Module's codegen asks whether any were written."""

    def __init__(self, module: cst.Module) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line, self.column = 1, 0
        self.starts: list[tuple[int, int]] = []
        self.ranges: dict[CSTNode, _Range] = {}

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        if "\n" in value or "\r" in value:
            segments = _NEWLINE.split(value)
            self.line += len(segments) - 1
            self.column = len(segments[-1])
        else:
            self.column += len(value)

    def before_codegen(self, node: CSTNode) -> None:
        if node.__class__ not in UNPLACED:
            self.starts.append((self.line, self.column))

    def after_codegen(self, node: CSTNode) -> None:
        if node.__class__ in UNPLACED:
            return
        start = self.starts.pop()
        if node not in self.ranges:  # a syntactic range recorded inside wins
            self.ranges[node] = (*start, self.line, self.column)

    def record_syntactic_position(self, node: CSTNode, *, start_node: CSTNode | None = None,
                                  end_node: CSTNode | None = None) -> "_Syntactic":
        return _Syntactic(self, node, start_node, end_node)


class _Syntactic:
    """The range of `node` is what renders inside the `with`, or starts where `start_node`
    starts / ends where `end_node` ends (decorators, trailing parts)."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: _PositionState, node: CSTNode, start_node: CSTNode | None,
                 end_node: CSTNode | None) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = (self.state.line, self.state.column)

    def __exit__(self, *exc_info: object) -> None:
        state = self.state
        start = self.start if self.start_node is None else state.ranges[self.start_node][:2]
        end = (state.line, state.column) if self.end_node is None else state.ranges[self.end_node][2:]
        state.ranges[self.node] = (*start, *end)


class CodeRanges(Mapping[CSTNode, CodeRange]):
    """node -> CodeRange, built on access."""

    def __init__(self, ranges: dict[CSTNode, _Range]) -> None:
        self._ranges = ranges

    def __getitem__(self, node: CSTNode) -> CodeRange:
        start_line, start_column, end_line, end_column = self._ranges[node]
        return CodeRange(CodePosition(start_line, start_column), CodePosition(end_line, end_column))

    def __contains__(self, node: object) -> bool:
        return node in self._ranges

    def __iter__(self) -> Iterator[CSTNode]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)


def code_ranges_of(module: cst.Module) -> CodeRanges:
    """The range of every node of `module` but whitespace and comments, as
    PositionProvider computes it."""
    state = _PositionState(module)
    module._codegen(state)
    return CodeRanges(state.ranges)


class StatementRanges(Mapping[CSTNode, CodeRange]):
    """`code_ranges_of(module)`, rendering only the top-level statements that hold the
    nodes asked for: findings name a few nodes of a module, and rendering the whole
    module with positions was a fifth of a large app's per-module work.

    A statement rendered alone gets the ranges the whole render gives it, moved to where
    it starts: top-level statements share no codegen state but the position (the module's
    indent unit and newline are the state's defaults). Where it starts comes from the
    texts of the statements before it, taken from `code_of`'s last rendering of the file
    when it holds them. A node held by two statements (a tree may reuse a node object)
    takes its range from the whole render, whose rules for repeats this does not follow."""

    def __init__(self, module: cst.Module, path: str | None) -> None:
        self._module = module
        self._known = _LAST_RENDERED.get(path, {}) if path is not None else {}
        self._layout: ModuleLayout | None = None  # which top-level statement holds a node
        self._starts: list[tuple[int, int]] = []  # where statement i starts, for i < len
        self._rendered: dict[int, dict[CSTNode, _Range]] = {}
        self._whole: dict[CSTNode, _Range] | None = None  # the whole render, when needed

    def _range(self, node: object) -> _Range | None:
        index = self._owner(node)
        if index is None:
            return None
        if index == _SHARED:
            return self._all().get(node)
        ranges = self._rendered.get(index)
        if ranges is None:
            ranges = self._rendered[index] = _render_statement(self._module, index, self._start(index))
        return ranges.get(node)

    def start(self, node: object) -> tuple[int, int] | None:
        """(line, column) where `node` starts. A top-level statement none of whose nodes
        was asked for yet is rendered only up to where it starts (its leading lines and
        decorators): a finding at a function names its first line, and rendering the
        whole function for it was most of a large app's position work."""
        index = self._owner(node)
        if index is not None and index != _SHARED and index not in self._rendered \
                and self._module.body[index] is node:
            started, ranges = _render_until_start(self._module, index, self._start(index))
            if started is not None:
                return started
            self._rendered[index] = ranges  # (a statement with no syntactic start: rendered whole)
        found = self._range(node)
        return None if found is None else found[:2]

    def _owner(self, node: object) -> int | None:
        if node is self._module:
            return _SHARED  # the module's own range is the whole render's
        if self._layout is None:
            self._layout = code_layout(self._module)
        return self._layout.owner(node)

    def _start(self, index: int) -> tuple[int, int]:
        """(line, column) where top-level statement `index` starts rendering."""
        module = self._module
        if not self._starts:
            self._starts.append(_moved((1, 0), _text_of(module, module.header)))
        while len(self._starts) <= index:
            done = len(self._starts) - 1
            self._starts.append(_moved(self._starts[done], _statement_text(module, module.body[done], self._known)))
        return self._starts[index]

    def __getitem__(self, node: CSTNode) -> CodeRange:
        found = self._range(node)
        if found is None:
            raise KeyError(node)
        start_line, start_column, end_line, end_column = found
        return CodeRange(CodePosition(start_line, start_column), CodePosition(end_line, end_column))

    def __contains__(self, node: object) -> bool:
        return self._range(node) is not None

    def __iter__(self) -> Iterator[CSTNode]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> dict[CSTNode, _Range]:
        if self._whole is None:
            self._whole = code_ranges_of(self._module)._ranges
        return self._whole


def _render_statement(module: cst.Module, index: int, start: tuple[int, int]) -> dict[CSTNode, _Range]:
    """The ranges of the nodes of top-level statement `index`, which starts at `start`."""
    state = _PositionState(module)
    state.line, state.column = start
    module.body[index]._codegen(state)
    return state.ranges


class _Started(Exception):
    def __init__(self, position: tuple[int, int]) -> None:
        self.position = position


class _StartState(_PositionState):
    """A `_PositionState` that stops the render where `target`'s syntactic range starts
    (as libcst records it: where its `with record_syntactic_position` is entered)."""

    def __init__(self, module: cst.Module, target: CSTNode) -> None:
        super().__init__(module)
        self.target = target

    def record_syntactic_position(self, node: CSTNode, *, start_node: CSTNode | None = None,
                                  end_node: CSTNode | None = None) -> "_Syntactic":
        if node is self.target and start_node is None:
            raise _Started((self.line, self.column))  # (nothing renders between the call and entering)
        return super().record_syntactic_position(node, start_node=start_node, end_node=end_node)


def _render_until_start(module: cst.Module, index: int,
                        start: tuple[int, int]) -> tuple[tuple[int, int] | None, dict[CSTNode, _Range]]:
    """Where top-level statement `index` (which starts rendering at `start`) starts, and
    no ranges; or None and the statement's ranges, when it has no syntactic start of its
    own (its range is then what it rendered, so it was rendered whole)."""
    statement = module.body[index]
    state = _StartState(module, statement)
    state.line, state.column = start
    try:
        statement._codegen(state)
    except _Started as started:
        return started.position, {}
    return None, state.ranges


def _moved(position: tuple[int, int], text: str) -> tuple[int, int]:
    """Where rendering is after `text`, from `position` (as `_PositionState` counts)."""
    if "\n" not in text and "\r" not in text:
        return position[0], position[1] + len(text)
    segments = _NEWLINE.split(text)
    return position[0] + len(segments) - 1, len(segments[-1])


class _CodeState(CodegenState):
    """libcst's codegen state records no position, but opens a generator-based context
    manager per syntactic node to do so: this one returns a shared no-op instead, which
    renders a module about 30% faster."""

    def record_syntactic_position(self, node: CSTNode, *, start_node: CSTNode | None = None,
                                  end_node: CSTNode | None = None) -> contextlib.nullcontext:
        return _NO_RECORD


_NO_RECORD = contextlib.nullcontext()


class _Parenthesized:
    """libcst's `_BaseParenthesizedNode._parenthesize`, the same steps in a class: the
    left parentheses, the node's syntactic position around what renders inside, then the
    right parentheses (not after an exception, as the generator's `yield` leaves them)."""

    __slots__ = ("node", "state", "recording")

    def __init__(self, node: CSTNode, state: CodegenState) -> None:
        self.node, self.state = node, state

    def __enter__(self) -> None:
        for lpar in self.node.lpar:
            lpar._codegen(self.state)
        self.recording = self.state.record_syntactic_position(self.node)
        self.recording.__enter__()

    def __exit__(self, kind: type | None, value: object, traceback: object) -> bool:
        suppressed = self.recording.__exit__(kind, value, traceback)
        if kind is not None and not suppressed:
            return False
        for rpar in self.node.rpar:
            rpar._codegen(self.state)
        return kind is not None


def _parenthesize(node: CSTNode, state: CodegenState) -> object:
    """What libcst renders every expression inside. Its own is a generator-based context
    manager, made and entered for each of the 190,000 expressions a `--all` run renders
    on the benchmark's big app (4% of a serial run's time); an expression without
    parentheses needs only its position recorded, which `_CodeState` does not."""
    if not node.lpar and not node.rpar:
        return state.record_syntactic_position(node)
    return _Parenthesized(node, state)


LIBCST_PARENTHESIZE = _BaseParenthesizedNode._parenthesize  # kept for the test that compares renders


def _is_libcsts_known_parenthesize(method: object) -> bool:
    """Whether libcst's method still names what it did when `_parenthesize` was written
    after it (libcst 1.8 and 1.9): a libcst that renders parentheses otherwise keeps its own."""
    code = getattr(getattr(method, "__wrapped__", None), "__code__", None)
    return code is not None and code.co_names == ("lpar", "_codegen", "record_syntactic_position", "rpar") \
        and code.co_varnames[:code.co_argcount] == ("self", "state")


if _is_libcsts_known_parenthesize(LIBCST_PARENTHESIZE):
    _BaseParenthesizedNode._parenthesize = _parenthesize  # for every render in this process, libcst's own too


def code_of(module: cst.Module, path: str | None = None) -> str:
    """`module.code`, faster. With the `path` of the file it is a version of, the text of
    each top-level statement that its last rendered version held too is reused."""
    indent, newline = module.default_indent, module.default_newline
    state = _CodeState(default_indent=indent, default_newline=newline)
    if path is None or not module.body or not module.has_trailing_newline:
        module._codegen(state)  # (Module's own ending rules for these: not worth the copy)
        return "".join(state.tokens)
    before = _LAST_RENDERED.get(path, {})
    after: dict[int, tuple[CSTNode, str, str, str]] = {}
    for line in module.header:
        line._codegen(state)
    tokens = state.tokens
    for statement in module.body:
        text = _kept_text(before, statement, indent, newline)
        if text is not None:
            tokens.append(text)
        else:
            start = len(tokens)
            statement._codegen(state)
            text = "".join(tokens[start:])
        after[id(statement)] = (statement, indent, newline, text)
    for line in module.footer:
        line._codegen(state)
    _LAST_RENDERED[path] = after
    return "".join(tokens)


# path -> the top-level statements of the last version of that file rendered with its path,
# with their texts (id -> statement, indent, newline, text). A codemod changes a few
# statements of a module and leaves the others in place (`TargetedTransformer` descends
# only to what it changes, `add_imports` keeps the rest), so the next version needs only
# its new statements rendered: a top-level statement renders the same wherever it is (no
# indentation around it, the module's newline and indent unit). Each entry holds its
# statement, so an id can never stand for another object; one version is kept per path.
_LAST_RENDERED: dict[str, dict[int, tuple[CSTNode, str, str, str]]] = {}


def _kept_text(kept: dict[int, tuple[CSTNode, str, str, str]], statement: CSTNode, indent: str,
               newline: str) -> str | None:
    """The text of `statement` among the `kept` ones of a `_LAST_RENDERED` entry, if it
    was rendered with this indent unit and newline."""
    known = kept.get(id(statement))
    if known is not None and known[0] is statement and known[1] == indent and known[2] == newline:
        return known[3]
    return None


def rendered_lengths(module: cst.Module, path: str) -> tuple[int, ...] | None:
    """After `code_of(module, path)`: the length of each top-level statement's text in
    that rendering, which is all `keep_rendered` needs to keep them in another process
    that has the text. None when it kept no text for them."""
    if not module.has_trailing_newline:
        return None  # (`code_of` renders such a module whole, keeping nothing)
    kept = _LAST_RENDERED.get(path, {})
    lengths = []
    for statement in module.body:
        text = _kept_text(kept, statement, module.default_indent, module.default_newline)
        if text is None:
            return None
        lengths.append(len(text))
    return tuple(lengths)


def keep_rendered(module: cst.Module, path: str, text: str, lengths: tuple[int, ...]) -> None:
    """Keep what `code_of(module, path)` would have kept, from the `text` a worker
    process rendered and its `rendered_lengths`: the next version of the file, here or in
    a process forked from here, then renders only its new statements, and its positions
    start where the kept texts say. Without this a module rewritten in workers by one
    codemod after another was rendered whole each time."""
    offset, footer = (len(_text_of(module, lines)) for lines in (module.header, module.footer))
    if len(lengths) != len(module.body) or offset + sum(lengths) + footer != len(text):
        return  # not this module's rendering: keep nothing rather than a wrong text
    kept: dict[int, tuple[CSTNode, str, str, str]] = {}
    for statement, length in zip(module.body, lengths):
        kept[id(statement)] = (statement, module.default_indent, module.default_newline, text[offset:offset + length])
        offset += length
    _LAST_RENDERED[path] = kept


def statement_line_count(module: cst.Module, statement: CSTNode, path: str | None = None) -> int:
    """How many lines a top-level statement of `module` takes as rendered, its leading
    blank lines and comments included: at least as many as any node in it spans. From
    the text `code_of` kept for the file (`path`) when it holds the statement, else
    rendered without positions."""
    kept = _LAST_RENDERED.get(path, {}) if path is not None else {}
    return len(_NEWLINE.findall(_statement_text(module, statement, kept)))


def lines_spanned(module: cst.Module, node: CSTNode, first: CSTNode) -> int:
    """How many lines `node` spans from the line where `first` (a node in it) starts to
    its end, as positions count them; rendered alone, not with the top-level statement
    that holds it (a method, with its whole class): which lines a node's parts take, one
    from another, does not depend on where it sits (indentation adds none)."""
    state = _PositionState(module)
    node._codegen(state)
    return state.ranges[node][2] - state.ranges[first][0] + 1


def _statement_text(module: cst.Module, statement: CSTNode, kept: dict[int, tuple[CSTNode, str, str, str]]) -> str:
    """A top-level statement's text: the `kept` one (a `_LAST_RENDERED` entry), else rendered."""
    text = _kept_text(kept, statement, module.default_indent, module.default_newline)
    return _text_of(module, [statement]) if text is None else text


def _text_of(module: cst.Module, nodes: list[CSTNode]) -> str:
    """The text of some of a module's top-level parts (statements, header or footer
    lines), rendered without positions."""
    state = _CodeState(default_indent=module.default_indent, default_newline=module.default_newline)
    for node in nodes:
        node._codegen(state)
    return "".join(state.tokens)


def forget_rendered() -> None:
    """Drop the texts kept for reuse (at the end of a run: a process that runs again, as
    `batch` workers do, must not keep the statements of every project it saw)."""
    _LAST_RENDERED.clear()


@functools.lru_cache(maxsize=16)
def code_ranges(module: cst.Module, path: str | None = None) -> StatementRanges:
    """`code_ranges_of(module)`, each statement rendered once however many ask, and only
    when one of its nodes is asked for. With the `path` of the file the module is a
    version of, the texts `code_of` kept for it are reused. Trees hash by identity; only
    the trees in use are kept."""
    return StatementRanges(module, path)
