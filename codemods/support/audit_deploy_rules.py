"""Deployment: ProxyFix behind a proxy (FR107)."""

from __future__ import annotations

from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.audit import Rule
from flask_refactor.codemod import Finding, Severity
from flask_refactor.project import Project

from .audit_common import is_true, production_modules, walk_module
from .flask import import_map
from .imports import ImportMap


# -- FR107 -----------------------------------------------------------------------------

PROXY_FIX = frozenset({"werkzeug.middleware.proxy_fix.ProxyFix", "werkzeug.contrib.fixers.ProxyFix"})
# (which files, what in them, what it means)
PROXY_SIGNALS = ((lambda name: name.endswith(".conf") or name.startswith("nginx"), "proxy_pass", "an nginx proxy_pass"),
                 (lambda name: name == "Caddyfile", "reverse_proxy", "a Caddy reverse_proxy"),
                 (lambda name: "compose" in name and name.endswith((".yml", ".yaml")), "traefik", "Traefik"),
                 (lambda name: "compose" in name and name.endswith((".yml", ".yaml")), "image: nginx", "an nginx container"))
PROXY_PLATFORMS = {"Procfile": "a Procfile (Heroku's router is a proxy)", "fly.toml": "fly.toml (Fly's proxy)",
                   "app.yaml": "app.yaml (App Engine's front end)", "render.yaml": "render.yaml (Render's proxy)"}
CLIENT_ATTRIBUTES = frozenset({"remote_addr", "scheme", "is_secure", "host_url", "url_root"})


class ProxyFixRule(Rule):
    id = "FR107"
    name = "proxy-fix"
    severity = Severity.WARNING
    summary = "Behind a proxy without ProxyFix, or ProxyFix wrapped around the Flask object."
    explain = '''\
Behind a reverse proxy (nginx, Heroku's router, a load balancer) every request comes
from the proxy: `request.remote_addr` is the proxy's address (rate limits and logs lump
all clients together), and `request.scheme`/`url_for(..., _external=True)` say http
although clients use https. Werkzeug's ProxyFix reads the X-Forwarded-* headers, and
must be told how many proxies to trust (too many lets clients spoof their address).
It wraps the WSGI callable: `app = ProxyFix(app)` replaces the Flask object with the
middleware, so `app.route`, `app.config` and `flask run` break; wrap `app.wsgi_app`.

The rule reports uses of the client's address or scheme when a deploy file shows a
proxy (Procfile, nginx `proxy_pass`, ...) and nothing in the project applies ProxyFix,
and every `app = ProxyFix(app)`. It never inserts ProxyFix itself: only you know how
many proxies are in front.

Bad:

    app = ProxyFix(app)

Good (one proxy in front that sets X-Forwarded-For and -Proto):

    from werkzeug.middleware.proxy_fix import ProxyFix
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)
'''

    def check(self, project: Project) -> Iterable[Finding]:
        applied = False
        uses: list[tuple[str, cst.CSTNode, str]] = []
        for path, module in production_modules(project, ("ProxyFix", "request", "_external")):
            imports = import_map(project, path) or ImportMap()
            positions = project.position_lookup(path)
            for node in walk_module(module):
                if isinstance(node, cst.Call) and imports.resolve(node.func) in PROXY_FIX:
                    applied = True
                if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call) \
                        and imports.resolve(node.value.func) in PROXY_FIX and node.value.args:
                    wrapped = get_full_name_for_node(node.value.args[0].value)
                    targets = {get_full_name_for_node(t.target) for t in node.targets}
                    if wrapped in targets and not (wrapped or "").endswith("wsgi_app"):
                        yield self.finding(path, positions(node)[0],
                                           f"{wrapped} = ProxyFix({wrapped}) replaces the Flask object with the "
                                           f"middleware ({wrapped}.route, {wrapped}.config and `flask run` stop "
                                           f"working); wrap the WSGI callable: {wrapped}.wsgi_app = "
                                           f"ProxyFix({wrapped}.wsgi_app, x_for=1, x_proto=1)", Severity.ERROR)
                what = _client_attribute(node, imports)
                if what:
                    uses.append((path, node, what))
        if applied or not uses:
            return
        signal = _proxy_signal(project)
        if signal is None:
            return
        for path, node, what in uses:
            line, column = project.position_lookup(path)(node)
            yield self.finding(path, line,
                               f"{what} behind a proxy ({signal}) without ProxyFix: it sees the proxy, not the "
                               "client; add app.wsgi_app = ProxyFix(app.wsgi_app, x_for=N, x_proto=N) with N the "
                               "number of proxies in front (a larger N lets clients spoof their address)",
                               column=column)


def _client_attribute(node: cst.CSTNode, imports: ImportMap) -> str | None:
    if isinstance(node, cst.Attribute) and node.attr.value in CLIENT_ATTRIBUTES \
            and imports.resolve(node.value) == "flask.request":
        return f"request.{node.attr.value}"
    if isinstance(node, cst.Call) and imports.resolve(node.func) == "flask.url_for" and any(
            a.keyword and a.keyword.value == "_external" and is_true(a.value) for a in node.args):
        return "url_for(..., _external=True)"
    if isinstance(node, cst.Call) and imports.resolve(node.func) == "flask_limiter.util.get_remote_address":
        return "get_remote_address()"
    if isinstance(node, cst.Arg) and imports.resolve(node.value) == "flask_limiter.util.get_remote_address":
        return "Flask-Limiter's get_remote_address"
    return None


def _proxy_signal(project: Project) -> str | None:
    for path in project.other_paths():
        name = path.rsplit("/", 1)[-1]
        if name in PROXY_PLATFORMS:
            return f"{path}: {PROXY_PLATFORMS[name]}"
    for path in project.other_paths():
        name = path.rsplit("/", 1)[-1]
        for applies, needle, label in PROXY_SIGNALS:
            if applies(name) and needle in (project.text(path) or ""):
                return f"{path}: {label}"
    return None
