"""What views do per request: writes on GET, blocking calls, async views, N+1 queries
(FR103-FR106)."""

from __future__ import annotations

import re
from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.audit import Rule
from flask_refactor.codemod import Finding, Severity
from flask_refactor.project import Project

from .audit_common import string_value
from .audit_orm import Relationship, lazy_relationships, queried_model, template_loops
from .audit_views import (
    Route, body_nodes, calls_in, describe_chain, functions, is_test_path, nodes_of, reachable, routes,
)
from .flask import import_map
from .imports import ImportMap


OFFLOAD_HINT = ("a slow call pins a worker: give it a timeout, or move the work to a task queue "
                "(Celery, RQ) and return 202 Accepted with a way to poll for the result")


# -- FR103 -----------------------------------------------------------------------------

SESSION_WRITES = frozenset({"add", "add_all", "delete", "merge", "flush", "bulk_save_objects",
                            "bulk_insert_mappings", "bulk_update_mappings"})
HTTP_WRITES = frozenset({f"{lib}.{verb}" for lib in ("requests", "httpx") for verb in ("post", "put", "patch", "delete")})


def state_change(call: cst.Call, imports: ImportMap) -> str | None:
    """What a call changes, if it is a write: through the ORM, `.save()`, or an HTTP POST."""
    qualified = imports.resolve(call.func)
    if qualified in HTTP_WRITES:
        return f"sends {qualified.split('.')[-1].upper()} to another service ({qualified})"
    if not isinstance(call.func, cst.Attribute):
        return None
    method = call.func.attr.value
    receiver = get_full_name_for_node(call.func.value) or ""
    if imports.resolve(call.func.value) == "flask.session":
        return None  # the cookie session is the client's own state
    if method == "commit" and not call.args:
        return f"commits a transaction ({receiver or '...'}.commit())"
    if method in SESSION_WRITES and receiver.lower().endswith("session"):
        return f"writes through the ORM ({receiver}.{method}())"
    if method in ("delete", "update") and _is_query_chain(call.func.value):
        return f"runs a bulk {method.upper()} (query.{method}())"
    if method in ("save", "delete_instance") and not call.args:
        return f"saves a model ({receiver or '...'}.{method}())"
    return None


def _is_query_chain(node: cst.BaseExpression, markers: tuple[str, ...] = ("query", "filter", "filter_by")) -> bool:
    """Whether a call chain goes through `.query` (or a filter of one)."""
    while True:
        if isinstance(node, cst.Call):
            node = node.func
        elif isinstance(node, cst.Attribute):
            if node.attr.value in markers:
                return True
            node = node.value
        else:
            return False


class StateChangeOnGet(Rule):
    id = "FR103"
    name = "state-change-on-get"
    severity = Severity.WARNING
    summary = "A GET-only route writes to the database or another service."
    explain = '''\
GET must be safe to repeat: browsers prefetch links, crawlers follow them, proxies
retry them, and CSRF protection (Flask-WTF) checks only POST, PUT, PATCH and DELETE. A
route that accepts only GET (no `methods=`, or `@app.get`) and, directly or through the
project functions it calls, adds, deletes or commits through the ORM, calls `.save()`,
or POSTs to another service can be triggered by any link on any site. The rule follows
calls into the project's own functions (a few levels deep) and names the path. Writes
that are harmless bookkeeping (a view counter) can be silenced with
`# flask-refactor: ignore[FR103]` on the `def` line.

Bad:

    @app.route("/orders/<int:id>/cancel")
    def cancel(id):
        db.session.delete(db.get_or_404(Order, id))
        db.session.commit()
        return redirect(url_for("orders"))

Good:

    @app.post("/orders/<int:id>/cancel")     # a form with a CSRF token posts here
    def cancel(id):
        ...
'''

    def check(self, project: Project) -> Iterable[Finding]:
        for route in routes(project):
            if not route.safe_only or is_test_path(route.path):
                continue
            writes = list(_writes(project, route))
            if not writes:
                continue
            what, where, chain = writes[0]
            more = f" (and {len(writes) - 1} more write{'s' * (len(writes) > 2)})" if len(writes) > 1 else ""
            yield self.finding(route.path, route.line,
                               f"GET {route.label} {what} at {where}"
                               f"{describe_chain(project, chain)}{more}: a link, prefetch or crawler triggers it "
                               "and CSRF protection does not cover GET; accept POST (or another unsafe method) for it")


def _writes(project: Project, route: Route):
    for reached in reachable(project, route.key):
        imports = import_map(project, reached.key.path) or ImportMap()
        positions = project.position_lookup(reached.key.path)
        for call in calls_in(reached.func):
            what = state_change(call, imports)
            if what:
                yield what, f"{reached.key.path}:{positions(call)[0]}", reached.chain


# -- FR104 -----------------------------------------------------------------------------

HTTP_CALLS = frozenset({f"requests.{verb}" for verb in ("get", "post", "put", "patch", "delete", "head", "options", "request")})
HTTPX_CALLS = frozenset({f"httpx.{verb}" for verb in ("get", "post", "put", "patch", "delete", "head", "options", "request", "stream")})
SUBPROCESS_CALLS = frozenset({"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output"})
URLOPEN = frozenset({"urllib.request.urlopen", "urllib2.urlopen"})


def blocking_call(call: cst.Call, imports: ImportMap) -> str | None:
    """Why a call can hold a worker indefinitely or on purpose, or None."""
    qualified = imports.resolve(call.func)
    if qualified is None:
        return None
    timeout = next((a.value for a in call.args if a.keyword and a.keyword.value == "timeout"), None)
    explicit_none = isinstance(timeout, cst.Name) and timeout.value == "None"
    if qualified in HTTP_CALLS and (timeout is None or explicit_none):
        return f"{qualified}() without a timeout waits as long as the other service does (forever by default)"
    if qualified in HTTPX_CALLS and explicit_none:
        return f"{qualified}(timeout=None) waits as long as the other service does"
    if qualified in URLOPEN and timeout is None and len([a for a in call.args if a.keyword is None]) < 3:
        return f"{qualified}() without a timeout waits as long as the other service does"
    if qualified in SUBPROCESS_CALLS and (timeout is None or explicit_none):
        return f"{qualified}() without a timeout waits as long as the child process runs"
    if qualified == "time.sleep":
        return "time.sleep() holds the worker while it sleeps"
    return None


class BlockingCallInView(Rule):
    id = "FR104"
    name = "blocking-call-in-view"
    severity = Severity.WARNING
    summary = "A view waits on the network, a subprocess or sleep without a bound."
    explain = '''\
Each request holds a worker (a process or thread) until the view returns. A call to
another service without a timeout (`requests` has none by default, nor `urlopen`), a
subprocess without a timeout, or `time.sleep` in a view holds it as long as that takes:
when the other side hangs, every worker ends up waiting, the load balancer answers 504,
and the whole site is down. The rule looks at views and the project functions they call.
`httpx` is only reported with `timeout=None` (its default is 5 seconds).

Give every call a timeout; work that takes long belongs in a task queue (Celery, RQ),
with the view returning 202 Accepted and a URL to poll.

Bad:

    @app.get("/rates")
    def rates():
        return requests.get(RATES_URL).json()

Good:

    @app.get("/rates")
    def rates():
        return requests.get(RATES_URL, timeout=(3.05, 10)).json()

    @app.post("/reports")
    def start_report():
        job = build_report.delay(request.json["id"])      # Celery task
        return {"job": job.id}, 202
'''

    def check(self, project: Project) -> Iterable[Finding]:
        sites: dict[tuple[str, int, int], tuple[str, list[tuple[Route, tuple]]]] = {}
        for route in routes(project):
            if is_test_path(route.path):
                continue
            for reached in reachable(project, route.key):
                imports = import_map(project, reached.key.path) or ImportMap()
                positions = project.position_lookup(reached.key.path)
                for call in calls_in(reached.func):
                    why = blocking_call(call, imports)
                    if why:
                        line, column = positions(call)
                        entry = sites.setdefault((reached.key.path, line, column), (why, []))
                        entry[1].append((route, reached.chain))
        for (path, line, column), (why, users) in sorted(sites.items()):
            route, chain = users[0]
            others = len({u[0].key for u in users}) - 1
            more = f" and {others} other view{'s' * (others > 1)}" if others > 0 else ""
            via = f"called from view {route.label}{describe_chain(project, chain[:-1])}" \
                if chain else f"in view {route.label}"
            yield self.finding(path, line, f"{why}; {via}{more}: {OFFLOAD_HINT}", column=column)


# -- FR105 -----------------------------------------------------------------------------

SYNC_CLIENTS = HTTP_CALLS | URLOPEN | SUBPROCESS_CALLS | frozenset({"time.sleep"})


class AsyncView(Rule):
    id = "FR105"
    name = "async-view"
    severity = Severity.WARNING
    summary = "An async def view that awaits nothing or calls synchronous clients."
    explain = '''\
Flask runs an `async def` view by starting an event loop for it in the worker thread:
the request still holds the worker until it returns, so async is no faster on its own.
It helps only when the view awaits several things concurrently. A view that awaits
nothing pays for the loop and gains nothing; one that calls `requests`, `time.sleep`,
`subprocess` or the Flask-SQLAlchemy session blocks its loop, so nothing it awaits runs
meanwhile. Some extensions' decorators also do not support async views.

Bad:

    @app.get("/profile")
    async def profile():
        user = db.session.get(User, session["uid"])
        avatar = requests.get(user.avatar_url, timeout=5).content
        ...

Good (plain def, or an async client awaited):

    @app.get("/profile")
    def profile():
        ...

    async with httpx.AsyncClient(timeout=5) as client:
        avatar, feed = await asyncio.gather(client.get(a), client.get(b))
'''

    def check(self, project: Project) -> Iterable[Finding]:
        known = functions(project)
        for route in routes(project):
            if not route.is_async or is_test_path(route.path):
                continue
            func = known[route.key]
            imports = import_map(project, route.path) or ImportMap()
            awaits = any(isinstance(n, cst.Await) or getattr(n, "asynchronous", None) is not None
                         for n in body_nodes(func))
            awaited = {id(n.expression) for n in body_nodes(func) if isinstance(n, cst.Await)}
            blocking = sorted({_sync_client(call, imports) for call in calls_in(func) if id(call) not in awaited} - {None})
            if blocking:
                yield self.finding(route.path, route.line,
                                   f"async view {route.label} calls synchronous "
                                   f"{', '.join(blocking)}: that blocks its event loop, so nothing it awaits runs "
                                   "meanwhile; use async clients (httpx.AsyncClient, asyncio.sleep) or make it a def view")
            elif not awaits:
                yield self.finding(route.path, route.line,
                                   f"async view {route.label} awaits nothing: Flask still ties "
                                   "up a worker for it and adds an event loop per request; make it a def view",
                                   Severity.INFO)


def _sync_client(call: cst.Call, imports: ImportMap) -> str | None:
    qualified = imports.resolve(call.func)
    if qualified in SYNC_CLIENTS or qualified in ("requests.Session",):
        return qualified
    if isinstance(call.func, cst.Attribute):
        receiver = get_full_name_for_node(call.func.value) or ""
        if receiver.endswith(("db.session", "db_session", "Session")):
            return f"{receiver}.{call.func.attr.value}()"
        if _is_query_chain(call.func.value, ("query",)):  # Model.query...: a blocking legacy query
            return "Model.query"
    return None


# -- FR106 -----------------------------------------------------------------------------

COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)


class NPlusOne(Rule):
    id = "FR106"
    name = "n-plus-one"
    severity = Severity.WARNING
    summary = "A view or its template loops over query results and reads a lazy relationship."
    explain = '''\
A relationship loads lazily by default: reading `order.customer` on each row of a query
result emits one more query per row. A page of 50 orders costs 51 queries, and the
cost grows with the data, not the traffic. The rule looks for loops (and
comprehensions) in views over a query of a model, and `{% for %}` loops in the
templates the view renders with such a result, that read a relationship declared
without an eager `lazy=` strategy; a query with `.options(...)` loader options is
taken as handled. Load the relationship with the query instead (`selectinload` for
collections, `joinedload` for many-to-one), and consider `lazy="raise"` in tests to
catch the next one.

Bad:

    orders = db.session.scalars(select(Order)).all()
    return render_template("orders.html", orders=orders)
    # orders.html: {% for o in orders %}{{ o.customer.email }}{% endfor %}

Good:

    orders = db.session.scalars(select(Order).options(joinedload(Order.customer))).all()
'''

    def check(self, project: Project) -> Iterable[Finding]:
        relationships = lazy_relationships(project)
        if not relationships:
            return
        models = set(relationships)
        known = functions(project)
        for route in routes(project):
            if is_test_path(route.path):
                continue
            func = known[route.key]
            positions = project.position_lookup(route.path)
            results = _query_results(func, models)
            for node, model, variable, body in _loops(func, models, results):
                hit = _first_relationship_read(body, variable, relationships[model])
                if hit is not None:
                    attribute_node, rel = hit
                    line, column = positions(attribute_node)
                    yield self.finding(route.path, line, _n_plus_one_message(model, variable, rel, f"view {route.function}"),
                                       column=column)
            yield from self._templates(project, route, func, models, results, relationships)

    def _templates(self, project: Project, route: Route, func: cst.FunctionDef, models: set[str],
                   results: dict[str, str], relationships: dict[str, dict[str, Relationship]]) -> Iterable[Finding]:
        for call in calls_in(func):
            if _callee_name(call) != "render_template" or not call.args:
                continue
            name = string_value(call.args[0].value)
            if not isinstance(name, str):
                continue
            passed = {}
            for arg in call.args[1:]:
                if arg.keyword is not None:
                    model = queried_model(arg.value, models) or results.get(get_full_name_for_node(arg.value) or "")
                    if model:
                        passed[arg.keyword.value] = model
            if not passed:
                continue
            for template in project.other_paths((f"templates/{name}",)):
                text = project.text(template) or ""
                for variable, iterated, line, body in template_loops(text):
                    model = passed.get(iterated)
                    if model is None:
                        continue
                    for match in re.finditer(rf"\b{re.escape(variable)}\.(\w+)", body):
                        rel = relationships[model].get(match.group(1))
                        if rel is not None:
                            offset = body.count("\n", 0, match.start())
                            yield self.finding(template, line + offset, _n_plus_one_message(
                                model, variable, rel, f"view {route.function} ({route.path}:{route.line})"))
                            break


def _callee_name(call: cst.Call) -> str:
    return (get_full_name_for_node(call.func) or "").rsplit(".", 1)[-1]


def _query_results(func: cst.FunctionDef, models: set[str]) -> dict[str, str]:
    """Local names assigned a query of a model in this function: name -> model."""
    found = {}
    for node in body_nodes(func):
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            model = queried_model(node.value, models)
            if model:
                found[node.targets[0].target.value] = model
    return found


def _loops(func: cst.FunctionDef, models: set[str], results: dict[str, str]):
    """(node, model, loop variable, nodes the loop runs per row) for loops over rows."""
    for node in body_nodes(func):
        if isinstance(node, cst.For):
            target, iterated, body = node.target, node.iter, [node.body]
        elif isinstance(node, COMPREHENSIONS):
            target, iterated = node.for_in.target, node.for_in.iter
            body = [node.key, node.value] if isinstance(node, cst.DictComp) else [node.elt]
            body += list(node.for_in.ifs)
        else:
            continue
        if not isinstance(target, cst.Name):
            continue
        model = queried_model(iterated, models) or results.get(get_full_name_for_node(iterated) or "")
        if model:
            yield node, model, target.value, body


def _first_relationship_read(body: list[cst.CSTNode], variable: str, relationships: dict[str, Relationship]):
    for node in (n for part in body for n in nodes_of(part)):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == variable \
                and node.attr.value in relationships:
            return node, relationships[node.attr.value]
    return None


def _n_plus_one_message(model: str, variable: str, rel: Relationship, where: str) -> str:
    return (f"loop over {model} query results in {where} reads {variable}.{rel.attribute}, a lazily loaded "
            f"relationship ({rel.path}:{rel.line}): one more query per row (N+1); load it with the query: "
            f".options(selectinload({model}.{rel.attribute})), or joinedload for a many-to-one")
