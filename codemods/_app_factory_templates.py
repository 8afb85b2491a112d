"""Qualifying endpoint names in Jinja templates for `app-factory`.

Jinja is not Python, and its own lexer does not give the text back losslessly, so the
template is scanned for its code regions (`{{ ... }}` and `{% ... %}`), skipping comments
(`{# ... #}`) and `{% raw %}` blocks, and endpoint strings are replaced only inside
`url_for(...)` first arguments and `request.endpoint` comparisons there.
"""

from __future__ import annotations

import re

_OPENERS = re.compile(r"\{\{|\{%|\{#")
_RAW_START = re.compile(r"\{%-?\s*raw\s*-?%\}")
_RAW_END = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_URL_FOR = re.compile(r"""(\burl_for\(\s*)(['"])([^'"\\]+)\2""")
_ENDPOINT_CMP = re.compile(r"""(\brequest\.endpoint\s*(?:==|!=)\s*)(['"])([^'"\\]+)\2""")
_ENDPOINT_CMP_REVERSED = re.compile(r"""(['"])([^'"\\]+)\1(\s*(?:==|!=)\s*request\.endpoint\b)""")
_ENDPOINT_IN = re.compile(r"""(\brequest\.endpoint\s+(?:not\s+)?in\s*[\(\[])([^\)\]]*)([\)\]])""")
_STRING = re.compile(r"""(['"])([^'"\\]+)\1""")

TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".xml", ".txt", ".tpl")


def code_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of every `{{...}}` and `{%...%}` region outside comments and raw blocks."""
    regions = []
    pos = 0
    while True:
        found = _OPENERS.search(text, pos)
        if not found:
            return regions
        opener = found.group()
        if opener == "{#":
            end = text.find("#}", found.end())
            if end < 0:
                return regions
            pos = end + 2
            continue
        raw = _RAW_START.match(text, found.start())
        if raw:
            closing = _RAW_END.search(text, raw.end())
            if not closing:
                return regions
            pos = closing.end()
            continue
        closer = "}}" if opener == "{{" else "%}"
        end = _find_closer(text, found.end(), closer)
        if end < 0:
            return regions
        regions.append((found.start(), end + 2))
        pos = end + 2


def _find_closer(text: str, pos: int, closer: str) -> int:
    """Index of `closer`, skipping quoted strings (a `}}` inside a string does not close)."""
    quote = None
    i = pos
    while i < len(text) - 1:
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif text.startswith(closer, i):
            return i
        i += 1
    return -1


def qualify_template(text: str, endpoints: dict[str, str]) -> tuple[str, int]:
    """The template with endpoint names qualified, and how many were changed."""
    count = 0

    def sub_url_for(match: re.Match) -> str:
        nonlocal count
        name = match.group(3)
        new = endpoints.get(name[1:] if name.startswith(".") else name)
        if new is None:
            return match.group()
        count += 1
        return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

    def sub_cmp(match: re.Match) -> str:
        nonlocal count
        new = endpoints.get(match.group(3))
        if new is None:
            return match.group()
        count += 1
        return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

    def sub_cmp_reversed(match: re.Match) -> str:
        nonlocal count
        new = endpoints.get(match.group(2))
        if new is None:
            return match.group()
        count += 1
        return f"{match.group(1)}{new}{match.group(1)}{match.group(3)}"

    def sub_in(match: re.Match) -> str:
        def one(string: re.Match) -> str:
            nonlocal count
            new = endpoints.get(string.group(2))
            if new is None:
                return string.group()
            count += 1
            return f"{string.group(1)}{new}{string.group(1)}"
        return match.group(1) + _STRING.sub(one, match.group(2)) + match.group(3)

    out = []
    last = 0
    for start, end in code_regions(text):
        region = text[start:end]
        region = _URL_FOR.sub(sub_url_for, region)
        region = _ENDPOINT_CMP.sub(sub_cmp, region)
        region = _ENDPOINT_CMP_REVERSED.sub(sub_cmp_reversed, region)
        region = _ENDPOINT_IN.sub(sub_in, region)
        out.append(text[last:start])
        out.append(region)
        last = end
    out.append(text[last:])
    return "".join(out), count


_DYNAMIC_URL_FOR = re.compile(r"""\burl_for\(\s*(?!['"\s]|request\.endpoint\b)""")


def dynamic_url_for_lines(text: str) -> list[int]:
    """Lines of `url_for(<expression>)` calls in code regions: endpoints that cannot be qualified."""
    lines = []
    for start, end in code_regions(text):
        for match in _DYNAMIC_URL_FOR.finditer(text, start, end):
            lines.append(text.count("\n", 0, match.start()) + 1)
    return lines


# Files that name the app for a server or the Flask CLI: `gunicorn app:app`, FLASK_APP=...
ENTRY_POINT_FILES = ("Procfile", "Dockerfile", ".flaskenv", ".env", ".ini", ".cfg", ".conf", ".sh",
                     ".yml", ".yaml", ".toml", ".service", "Makefile")


def rewrite_entry_points(text: str, module: str, var: str, wsgi: str) -> tuple[str, list[int]]:
    """`module:var` (not a call, not part of a longer name) -> `wsgi:var`; and the lines changed."""
    pattern = re.compile(rf"(?<![\w.:/-]){re.escape(module)}:{re.escape(var)}\b(?!\s*\()")
    lines = sorted({text.count("\n", 0, m.start()) + 1 for m in pattern.finditer(text)})
    return pattern.sub(f"{wsgi}:{var}", text), lines
