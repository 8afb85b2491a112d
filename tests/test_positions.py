"""Positions must be libcst's PositionProvider's, node for node: findings and the
extract-services line counts are built on them."""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flask_refactor.positions import UNPLACED, code_of, code_ranges_of

from helpers import sample_modules


def _assert_same_ranges(module: cst.Module, where: str) -> None:
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    ours = code_ranges_of(module)
    placed = {node: code_range for node, code_range in expected.items() if type(node) not in UNPLACED}
    assert len(ours) == len(placed), where
    for node, code_range in placed.items():
        assert ours[node] == code_range, f"{where}: {type(node).__name__}"


def test_corner_syntax_and_real_packages_have_libcsts_positions():
    for where, module in sample_modules(("flask", "click")):  # libcst's own resolution is the slow side
        _assert_same_ranges(module, where)


def test_trailing_newline_and_crlf_are_counted_like_libcst():
    for source in ("", "\n", "x = 1", "x = 1\n", "x = (\r\n  1)\r\n", "if x:\r    y\r", "# c\n\n\n"):
        _assert_same_ranges(cst.parse_module(source), repr(source))


def test_ranges_read_as_code_ranges():
    module = cst.parse_module("def f():\n    return 1\n")
    ranges = code_ranges_of(module)
    func = module.body[0]
    assert ranges[func].start.line == 1 and ranges[func].end.line == 2
    assert func in ranges and ranges.get(cst.Name("f")) is None
    assert not any(type(node) in UNPLACED for node in ranges)


def test_code_of_renders_what_libcst_renders():
    for where, module in sample_modules(("flask", "click", "werkzeug", "jinja2")):
        assert code_of(module) == module.code, where
    for source in ("", "\n", "x = 1", "if x:\r\n    y\r\n", "# c\n\n\n"):
        assert code_of(cst.parse_module(source)) == source
