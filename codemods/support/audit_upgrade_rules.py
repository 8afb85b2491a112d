"""Flask APIs removed or deprecated in the pinned Flask version (FR108)."""

from __future__ import annotations

from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.audit import Rule
from flask_refactor.codemod import Finding, Severity
from flask_refactor.project import Project

from .audit_common import config_call_keywords, config_subscript_key, string_value, walk_module
from .audit_views import nodes_of
from .flask import app_modules, import_map
from .imports import ImportMap
from .versions import Pin, Version, flask_pin, format_version


# -- FR108 -----------------------------------------------------------------------------

class Removed:
    """A Flask (or Werkzeug) API gone in a Flask version. `breaks`: using it fails
    (ImportError, AttributeError, TypeError); otherwise it is silently ignored."""

    def __init__(self, what: str, deprecated: Version | None, removed: Version, breaks: bool, instead: str) -> None:
        self.what, self.deprecated, self.removed, self.breaks, self.instead = what, deprecated, removed, breaks, instead


# Werkzeug removals are given as the first Flask release that requires the Werkzeug
# without them (Flask 2.0 requires Werkzeug 2.0, Flask 3.0 requires Werkzeug 3.0).
REMOVED_NAMES: dict[str, Removed] = {
    "flask._app_ctx_stack": Removed("flask._app_ctx_stack", (2, 2), (3, 0), True,
                                    "store data on g, or use flask.globals.app_ctx"),
    "flask._request_ctx_stack": Removed("flask._request_ctx_stack", (2, 2), (3, 0), True,
                                        "store data on g, or use flask.globals.request_ctx"),
    "flask.globals._app_ctx_stack": Removed("flask.globals._app_ctx_stack", (2, 2), (3, 0), True, "g"),
    "flask.globals._request_ctx_stack": Removed("flask.globals._request_ctx_stack", (2, 2), (3, 0), True, "g"),
    "flask.Markup": Removed("flask.Markup", (2, 3), (3, 0), True, "from markupsafe import Markup"),
    "flask.escape": Removed("flask.escape", (2, 3), (3, 0), True, "from markupsafe import escape"),
    "flask.json.JSONEncoder": Removed("flask.json.JSONEncoder", (2, 2), (2, 3), True,
                                      "subclass flask.json.provider.DefaultJSONProvider and set app.json"),
    "flask.json.JSONDecoder": Removed("flask.json.JSONDecoder", (2, 2), (2, 3), True,
                                      "subclass flask.json.provider.DefaultJSONProvider and set app.json"),
    "flask.json.htmlsafe_dumps": Removed("flask.json.htmlsafe_dumps", (2, 2), (2, 3), True, "markupsafe / |tojson"),
    "flask.safe_join": Removed("flask.safe_join", (2, 0), (2, 1), True, "werkzeug.utils.safe_join"),
    "flask.helpers.safe_join": Removed("flask.helpers.safe_join", (2, 0), (2, 1), True, "werkzeug.utils.safe_join"),
    "werkzeug.contrib": Removed("werkzeug.contrib", None, (2, 0), True,
                                "werkzeug.middleware (ProxyFix: werkzeug.middleware.proxy_fix)"),
    "werkzeug.secure_filename": Removed("from werkzeug import secure_filename", None, (2, 0), True,
                                        "werkzeug.utils.secure_filename"),
    "werkzeug.cached_property": Removed("from werkzeug import cached_property", None, (2, 0), True,
                                        "werkzeug.utils.cached_property"),
    "werkzeug.import_string": Removed("from werkzeug import import_string", None, (2, 0), True,
                                      "werkzeug.utils.import_string"),
}
for _name in ("url_parse", "url_quote", "url_quote_plus", "url_unquote", "url_unquote_plus", "url_encode",
              "url_decode", "url_join", "url_fix", "url_unparse"):
    REMOVED_NAMES[f"werkzeug.urls.{_name}"] = Removed(f"werkzeug.urls.{_name}", (2, 3), (3, 0), True,
                                                       "urllib.parse (quote, urlsplit, urlencode, ...)")
REMOVED_ATTRIBUTES: dict[str, Removed] = {
    "before_first_request": Removed("before_first_request", (2, 2), (2, 3), True,
                                    "run the set-up in the app factory, inside `with app.app_context():`"),
    "before_app_first_request": Removed("before_app_first_request", (2, 2), (2, 3), True,
                                        "run the set-up in the app factory, inside `with app.app_context():`"),
    "json_encoder": Removed("app.json_encoder", (2, 2), (2, 3), False,
                            "subclass flask.json.provider.DefaultJSONProvider and set app.json"),
    "json_decoder": Removed("app.json_decoder", (2, 2), (2, 3), False,
                            "subclass flask.json.provider.DefaultJSONProvider and set app.json"),
    "is_xhr": Removed("request.is_xhr", None, (2, 0), True,
                      'request.headers.get("X-Requested-With") == "XMLHttpRequest"'),
}
REMOVED_CONFIG: dict[str, Removed] = {
    "JSON_AS_ASCII": Removed("JSON_AS_ASCII", (2, 2), (2, 3), False, "app.json.ensure_ascii"),
    "JSON_SORT_KEYS": Removed("JSON_SORT_KEYS", (2, 2), (2, 3), False, "app.json.sort_keys"),
    "JSONIFY_MIMETYPE": Removed("JSONIFY_MIMETYPE", (2, 2), (2, 3), False, "app.json.mimetype"),
    "JSONIFY_PRETTYPRINT_REGULAR": Removed("JSONIFY_PRETTYPRINT_REGULAR", (2, 2), (2, 3), False, "app.json.compact"),
    "ENV": Removed("the ENV config key", (2, 2), (2, 3), False, "DEBUG / FLASK_DEBUG"),
}
SEND_FILE_KEYWORDS = {
    "attachment_filename": Removed("send_file(attachment_filename=)", (2, 0), (2, 2), True, "download_name="),
    "cache_timeout": Removed("send_file(cache_timeout=)", (2, 0), (2, 2), True, "max_age="),
    "add_etags": Removed("send_file(add_etags=)", (2, 0), (2, 2), True, "etag="),
}
SEND_FILE = frozenset({"flask.send_file", "flask.send_from_directory", "flask.helpers.send_file",
                       "flask.helpers.send_from_directory"})
FLASK_ENV = Removed("FLASK_ENV", (2, 2), (2, 3), False, "FLASK_DEBUG=1 (or `flask run --debug`)")
DOTENV_FILES = (".flaskenv", ".env")
ENV_READERS = frozenset({"os.environ.get", "os.getenv", "os.environ.setdefault"})


class RemovedApi(Rule):
    id = "FR108"
    name = "removed-api"
    severity = Severity.WARNING
    summary = "Flask APIs removed or deprecated in the Flask version the project pins."
    explain = '''\
Flask removes deprecated APIs after a release or two, and some removals are silent:
`JSON_AS_ASCII` or `FLASK_ENV` are simply ignored on Flask 2.3+, so output or debug mode
changes without an error. The rule reads the Flask requirement from requirements*.txt,
pyproject.toml, Pipfile, setup.cfg or setup.py: an API removed in every version the pin
allows is an error (or a warning when it is only ignored); one deprecated but still
present is a warning (it breaks on upgrade). Without a pin, a fresh install gets the
newest Flask, so removed APIs are reported as warnings. Covered: `before_first_request`,
`flask.ext`, `_app_ctx_stack`/`_request_ctx_stack`, `flask.Markup`/`escape`,
`flask.json.JSONEncoder`, `app.json_encoder`, `JSON_AS_ASCII`/`JSON_SORT_KEYS`/
`JSONIFY_*`, `ENV`/`FLASK_ENV`, `safe_join`, old `send_file` arguments,
`werkzeug.contrib`, top-level `werkzeug` helpers and the `werkzeug.urls` functions
removed in Werkzeug 3.

Bad (Flask 3):

    from flask import Markup
    @app.before_first_request
    def seed(): ...
    app.config["JSON_AS_ASCII"] = False

Good:

    from markupsafe import Markup
    with app.app_context():
        seed()
    app.json.ensure_ascii = False
'''

    def check(self, project: Project) -> Iterable[Finding]:
        pin = flask_pin(project)
        needles = ("flask", "werkzeug", "first_request", "json_encoder", "json_decoder", "is_xhr", "JSON",
                   "ENV", "send_")
        for path, module in app_modules(project, needles):
            imports = import_map(project, path) or ImportMap()
            positions = project.position_lookup(path)
            for node, removed in _removed_uses(module, imports):
                line, column = positions(node)
                yield self._finding(path, line, removed, pin, column)
        for path in project.other_paths(DOTENV_FILES):
            for number, line in enumerate((project.text(path) or "").splitlines(), 1):
                if line.strip().removeprefix("export ").startswith("FLASK_ENV="):
                    yield self._finding(path, number, FLASK_ENV, pin)

    def _finding(self, path: str, line: int, removed: Removed, pin: Pin | None, column: int = 0) -> Finding:
        message, severity = _verdict(removed, pin)
        return self.finding(path, line, message, severity, column)


def _verdict(removed: Removed, pin: Pin | None) -> tuple[str, Severity]:
    """What the use of a removed API means under the project's Flask pin."""
    gone = format_version(removed.removed)
    effect = "fails" if removed.breaks else "is silently ignored"
    instead = f"instead: {removed.instead}"
    if pin is None:
        return (f"{removed.what} is gone since Flask {gone} and {effect} there; no Flask version is pinned, so a "
                f"fresh install gets it; {instead}", Severity.WARNING)
    pinned = f"the project pins Flask {pin.spec} ({pin.source})"
    if pin.always_at_least(removed.removed):
        return (f"{removed.what} {effect}: removed in Flask {gone} and {pinned}; {instead}",
                Severity.ERROR if removed.breaks else Severity.WARNING)
    if pin.allows_at_least(removed.removed):
        return f"{removed.what} {effect} on Flask {gone}+, which {pinned} allows; {instead}", Severity.WARNING
    if removed.deprecated is not None and pin.allows_at_least(removed.deprecated):
        return (f"{removed.what} is deprecated ({pinned}) and removed in Flask {gone}, so it breaks on upgrade; "
                f"{instead}", Severity.WARNING)
    return f"{removed.what} is removed in Flask {gone} ({pinned}): an upgrade blocker; {instead}", Severity.INFO


def _removed_uses(module: cst.Module, imports: ImportMap):
    inside_imports: set[int] = set()  # the dotted names of an import statement are not uses
    for node in walk_module(module):
        if id(node) in inside_imports:
            continue
        if isinstance(node, (cst.Import, cst.ImportFrom)):
            inside_imports.update(id(n) for n in nodes_of(node))
            for qualified in _imported(node):
                removed = _removed_name(qualified)
                if removed is not None:
                    yield node, removed
                    break
        elif isinstance(node, cst.Attribute):
            qualified = imports.resolve(node)
            removed = _removed_name(qualified)
            if removed is not None and get_full_name_for_node(node.value) in imports.names:
                yield node, removed
            elif node.attr.value in REMOVED_ATTRIBUTES and _attribute_applies(node, imports):
                yield node, REMOVED_ATTRIBUTES[node.attr.value]
        elif isinstance(node, cst.Subscript):
            key = config_subscript_key(node)
            if key in REMOVED_CONFIG:
                yield node, REMOVED_CONFIG[key]
            elif imports.resolve(node.value) == "os.environ" and _subscript_string(node) == "FLASK_ENV":
                yield node, FLASK_ENV
        elif isinstance(node, cst.Call):
            for arg in config_call_keywords(node):
                if arg.keyword.value in REMOVED_CONFIG:
                    yield node, REMOVED_CONFIG[arg.keyword.value]
            if imports.resolve(node.func) in ENV_READERS and node.args \
                    and string_value(node.args[0].value) == "FLASK_ENV":
                yield node, FLASK_ENV
            if imports.resolve(node.func) in SEND_FILE:
                for arg in node.args:
                    if arg.keyword and arg.keyword.value in SEND_FILE_KEYWORDS:
                        yield node, SEND_FILE_KEYWORDS[arg.keyword.value]


def _subscript_string(node: cst.Subscript) -> str | None:
    if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
        value = string_value(node.slice[0].slice.value)
        return value if isinstance(value, str) else None
    return None


def _attribute_applies(node: cst.Attribute, imports: ImportMap) -> bool:
    if node.attr.value == "is_xhr":
        return imports.resolve(node.value) == "flask.request"
    return True  # the other names exist only on Flask apps and blueprints


def _imported(node: cst.Import | cst.ImportFrom) -> list[str]:
    if isinstance(node, cst.Import):
        return [get_full_name_for_node(alias.name) or "" for alias in node.names]
    if node.relative or node.module is None:
        return []
    source = get_full_name_for_node(node.module) or ""
    if isinstance(node.names, cst.ImportStar):
        return [source]
    return [source] + [f"{source}.{get_full_name_for_node(alias.name)}" for alias in node.names]


def _removed_name(qualified: str | None) -> Removed | None:
    if not qualified:
        return None
    if qualified == "flask.ext" or qualified.startswith("flask.ext."):
        return Removed("flask.ext", (0, 11), (1, 0), True, "import the extension package (flask_sqlalchemy, ...)")
    if qualified.startswith("werkzeug.contrib"):
        return REMOVED_NAMES["werkzeug.contrib"]
    return REMOVED_NAMES.get(qualified)
