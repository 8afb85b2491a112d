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
from libcst._nodes.internal import CodegenState  # the codegen protocol PositionProvider uses too
from libcst.metadata import CodePosition, CodeRange

from .walk import WHITESPACE as UNPLACED  # no range is kept for these: nothing is reported at them

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


class _CodeState(CodegenState):
    """libcst's codegen state records no position, but opens a generator-based context
    manager per syntactic node to do so: this one returns a shared no-op instead, which
    renders a module about 30% faster."""

    def record_syntactic_position(self, node: CSTNode, *, start_node: CSTNode | None = None,
                                  end_node: CSTNode | None = None) -> contextlib.nullcontext:
        return _NO_RECORD


_NO_RECORD = contextlib.nullcontext()


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
        known = before.get(id(statement))
        if known is not None and known[0] is statement and known[1] == indent and known[2] == newline:
            text = known[3]
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


def forget_rendered() -> None:
    """Drop the texts kept for reuse (at the end of a run: a process that runs again, as
    `batch` workers do, must not keep the statements of every project it saw)."""
    _LAST_RENDERED.clear()


@functools.lru_cache(maxsize=16)
def code_ranges(module: cst.Module) -> CodeRanges:
    """`code_ranges_of`, computed once per tree however many ask (it renders the whole
    module). Trees hash by identity; only the trees in use are kept."""
    return code_ranges_of(module)
