"""Positions must be libcst's PositionProvider's, node for node: findings and the
extract-services line counts are built on them."""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flask_refactor import positions
from flask_refactor.positions import UNPLACED, code_of, code_ranges_of
from flask_refactor.walk import iter_nodes

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


def test_parentheses_render_as_libcsts_own_context_manager_renders_them(monkeypatch):
    """`positions` replaces how libcst renders an expression's parentheses (and records its
    position) in every render: texts and libcst's own positions must not change."""
    def renders(module: cst.Module) -> tuple[str, str, list]:
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        ranges = wrapper.resolve(PositionProvider)
        return module.code, code_of(module), list(ranges.items())

    samples = sample_modules(("flask",)) + [("parentheses", cst.parse_module(
        "x = ((a) + (b))\nf((yield), (lambda: (1)))\nprint(((x)), [(y) for (y) in ((z))])\n"))]
    ours = [renders(module) for _, module in samples]
    assert positions._BaseParenthesizedNode._parenthesize is positions._parenthesize
    monkeypatch.setattr(positions._BaseParenthesizedNode, "_parenthesize", positions.LIBCST_PARENTHESIZE)
    for (where, module), (code, fast_code, ranges) in zip(samples, ours):
        assert renders(module) == (code, fast_code, ranges), where


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


def _recorded_tokens(monkeypatch, state_class: type) -> list[str]:
    """The tokens every render through `state_class` writes from now on."""
    tokens: list[str] = []
    add_token = state_class.add_token
    monkeypatch.setattr(state_class, "add_token", lambda state, value: tokens.append(value) or add_token(state, value))
    return tokens


def _edited(module: cst.Module) -> cst.Module:
    """A next version as a codemod makes it: one statement replaced, one dropped, one
    added; the others are the same objects."""
    body = list(module.body)
    for index, statement in enumerate(body):
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            body[index] = statement.with_changes(name=cst.Name(statement.name.value + "_renamed"))
            break
    if len(body) > 2:
        del body[1]
    body.append(cst.parse_statement("added = 1\n"))
    return module.with_changes(body=body)


def test_a_next_version_reuses_the_texts_of_statements_it_kept(monkeypatch):
    from flask_refactor import positions

    tokens = _recorded_tokens(monkeypatch, positions._CodeState)
    for where, module in sample_modules(("flask", "click")):
        path = f"reuse/{where}"
        assert code_of(module, path) == module.code, where
        texts = {id(s): entry[3] for s, entry in zip(module.body, positions._LAST_RENDERED[path].values())}
        new = _edited(module)
        tokens.clear()
        code_of(new)
        rendered_whole = len(tokens)
        tokens.clear()
        assert code_of(new, path) == new.code, where
        assert len(tokens) < rendered_whole, where  # only the new statements were rendered
        after = positions._LAST_RENDERED[path]
        kept = [s for s in new.body if id(s) in texts]
        assert kept and all(after[id(s)][3] is texts[id(s)] for s in kept), where  # the same text: not rendered again
        again = _edited(new)
        assert code_of(again, path) == again.code, where


def test_reuse_follows_the_modules_newline_and_indent():
    crlf = cst.parse_module("import os\r\n\r\ndef f():\r\n\tif os:\r\n\t\treturn 1\r\n")
    lf = cst.parse_module("import os\n\ndef f():\n    if os:\n        return 1\n")
    # the same statement objects, in a module with another newline and indent unit
    mixed = lf.with_changes(body=crlf.body)
    assert code_of(crlf, "m.py") == crlf.code
    assert code_of(mixed, "m.py") == mixed.code
    no_newline = cst.parse_module("# head\nx = 1\n# foot")
    assert code_of(no_newline, "n.py") == no_newline.code
    assert code_of(no_newline.with_changes(body=[*no_newline.body, cst.parse_statement("y = 2\n")]), "n.py") \
        == "# head\nx = 1\ny = 2\n# foot"


def _assert_statement_ranges_are_the_whole_renders(module: cst.Module, where: str, path: str | None = None) -> None:
    """Every node asked of `code_ranges` (in an order unrelated to the text's) has the
    range a whole render gives it; those it does not give one have none."""
    from flask_refactor.positions import code_ranges
    from flask_refactor.walk import iter_nodes

    whole = code_ranges_of(module)
    code_ranges.cache_clear()
    ours = code_ranges(module, path)
    nodes = list(iter_nodes(module))
    for node in nodes[::-1] + nodes:
        assert ours.get(node) == whole.get(node), f"{where}: {type(node).__name__}"
        assert (node in ours) == (node in whole), where
    assert len(ours) == len(whole), where


def test_ranges_rendered_one_statement_at_a_time_are_the_whole_renders():
    for where, module in sample_modules(("flask", "click")):
        _assert_statement_ranges_are_the_whole_renders(module, where)
        path = f"statements/{where}"
        code_of(module, path)  # the texts of its statements are then known, and used
        _assert_statement_ranges_are_the_whole_renders(_edited(module), where, path)
    for source in ("", "\n", "x = 1", "# head\r\n\r\nx = (\r\n  1)\r\nif x:\r    y\r# foot", "\n\n# c\n\n\n"):
        _assert_statement_ranges_are_the_whole_renders(cst.parse_module(source), repr(source))


def test_a_node_held_by_two_statements_has_the_whole_renders_range():
    # A tree may hold one node object in two places; the whole render keeps the range of
    # its first occurrence, or the last for a node with a syntactic range (a Name).
    from helpers import module_sharing_nodes

    _assert_statement_ranges_are_the_whole_renders(module_sharing_nodes()[0], "shared")


def test_asking_for_a_node_renders_only_its_statement(monkeypatch):
    from flask_refactor import positions

    from helpers import rendered_for_positions

    rendered = rendered_for_positions(monkeypatch)
    tokens = _recorded_tokens(monkeypatch, positions._PositionState)
    module = cst.parse_module("import os\n\n\ndef f():\n    return os.sep\n\n\ndef g():\n    return 2\n")
    last = module.body[-1]
    assert positions.code_ranges(module, None)[last.body.body[0]].start.line == 9
    assert rendered == [module]
    assert "".join(tokens) == module.code_for_node(last)  # the last statement alone


def _start(ranges, node):
    found = ranges.get(node)
    return None if found is None else (found.start.line, found.start.column)


def test_where_a_node_starts_is_where_the_whole_render_starts_it():
    """`start(node)`: top-level statements asked first (rendered only up to their start),
    then every node, in an order unrelated to the text's; a tree sharing nodes too."""
    from helpers import module_sharing_nodes

    from flask_refactor.positions import code_ranges
    from flask_refactor.walk import iter_nodes

    sources = ("", "x = 1", "# head\r\n\r\nx = (\r\n  1)\r\nif x:\r    y\r# foot", "@a\n\n# c\n@b\nclass C: pass\n")
    modules = [*sample_modules(("flask", "click")), *((repr(s), cst.parse_module(s)) for s in sources),
               ("shared", module_sharing_nodes()[0])]
    for where, module in modules:
        whole = code_ranges_of(module)
        code_ranges.cache_clear()
        ours = code_ranges(module, None)
        for statement in module.body:
            assert ours.start(statement) == _start(whole, statement), where
        nodes = list(iter_nodes(module))
        for node in nodes[::-1]:
            assert ours.start(node) == _start(whole, node), f"{where}: {type(node).__name__}"


def test_where_a_function_starts_is_found_without_rendering_its_body(monkeypatch):
    from flask_refactor import positions

    tokens = _recorded_tokens(monkeypatch, positions._PositionState)
    module = cst.parse_module("import os\n\n\n# a comment\n@decorate(1)\ndef f():\n    return os.sep\n")
    assert positions.code_ranges(module, None).start(module.body[-1]) == (6, 0)
    assert "".join(tokens) == "\n\n# a comment\n@decorate(1)\n"  # its leading lines and decorator only


def test_a_statements_line_count_bounds_what_any_node_in_it_spans():
    # extract-services measures a view only when its statement's text is longer than
    # the limit: the text's line count must never be less than what a node spans
    from flask_refactor.positions import statement_line_count

    for where, module in sample_modules(("flask", "click")):
        ranges = code_ranges_of(module)
        path = f"count/{where}"
        counts = [statement_line_count(module, statement) for statement in module.body]
        code_of(module, path)  # from the kept texts now: the same counts
        assert counts == [statement_line_count(module, statement, path) for statement in module.body], where
        for statement, count in zip(module.body, counts):
            assert count == len(module.code_for_node(statement).splitlines()), where
            if isinstance(statement, cst.FunctionDef):
                assert ranges[statement].end.line - ranges[statement.name].start.line + 1 <= count, where
    crlf = cst.parse_module("@deco\r\ndef f():\r\n    return (\r\n        1)\r\n")
    assert statement_line_count(crlf, crlf.body[0]) == 4


def test_statement_texts_rendered_in_a_worker_are_kept_where_the_text_arrives():
    # a worker sends a module's text and its statements' lengths; the coordinator then
    # holds each statement's text as `code_of` would have kept it
    from flask_refactor import positions
    from flask_refactor.positions import keep_rendered, rendered_lengths

    sources = ["# header\n\nimport os\n\n\ndef f():\n    return os.sep\n# footer\n", "x = 1\r\ny = 2\r\n"]
    modules = [cst.parse_module(source) for source in sources] + [m for _, m in sample_modules(("click",))]
    for number, module in enumerate(modules):
        path = f"kept/{number}"
        text = code_of(module, path)
        expected = {key: entry[3] for key, entry in positions._LAST_RENDERED[path].items()}
        lengths = rendered_lengths(module, path)
        positions.forget_rendered()
        keep_rendered(module, path, text, lengths)
        assert {key: entry[3] for key, entry in positions._LAST_RENDERED[path].items()} == expected, path
        positions.forget_rendered()
        keep_rendered(module, path, text + "# one more line\n", lengths)  # not this module's text
        assert path not in positions._LAST_RENDERED
        keep_rendered(module, path, text, lengths[:-1])
        assert path not in positions._LAST_RENDERED
    no_newline = cst.parse_module("x = 1")
    code_of(no_newline, "kept/no-newline")
    assert rendered_lengths(no_newline, "kept/no-newline") is None  # rendered whole: nothing kept
    edited = _edited(modules[0])
    assert rendered_lengths(edited, "kept/0") is None  # its new statements were not rendered with the path


def test_a_change_sent_back_from_a_worker_brings_its_statement_texts(monkeypatch):
    import pickle

    from flask_refactor import positions, transfer
    from flask_refactor.codemod import FileChange

    module = cst.parse_module("import os\n\n\ndef f():\n    return os.sep\n\n\ndef g():\n    return 2\n")
    change = FileChange("sent.py", module, "edited")
    data = transfer.dumps(change)  # in the worker: rendered there, as it is pickled
    positions.forget_rendered()  # the coordinator has kept nothing of this file
    received = pickle.loads(data)
    assert received.rendered == module.code
    tokens = _recorded_tokens(monkeypatch, positions._CodeState)
    new = received.new.with_changes(body=[*received.new.body[:-1], cst.parse_statement("g = 2\n")])
    assert code_of(new, "sent.py") == "import os\n\n\ndef f():\n    return os.sep\ng = 2\n"
    assert "".join(tokens) == "g = 2\n"  # the kept statements were not rendered again


def test_the_lines_a_function_spans_rendered_alone_are_those_of_the_whole_render():
    from flask_refactor.positions import lines_spanned

    compared = 0
    for where, module in sample_modules(("flask", "click")) + [("crlf", cst.parse_module(
            "class C:\r\n    @d\r\n    def f(self):\r\n\r\n        # c\r\n        return (\r\n            1)\r\n"))]:
        ranges = code_ranges_of(module)
        for node in iter_nodes(module):
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                expected = ranges[node].end.line - ranges[node.name].start.line + 1
                assert lines_spanned(module, node, node.name) == expected, where
                compared += 1
    assert compared > 1000
