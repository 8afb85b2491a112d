"""`app-factory`: turn a module-level Flask app into `create_app()`, with extensions in
`extensions.py`, views on a Blueprint and endpoint names qualified everywhere.

The work is in `_app_factory_*`: `migration` plans the whole project, `appmodule` splits
the module that creates the app, `views` moves registrations onto a blueprint,
`endpoints` and `templates` qualify endpoint names, `syntax` holds the tree helpers.
"""

from __future__ import annotations

from flask_refactor.codemod import ChangeSet, Codemod, Option, Severity
from flask_refactor.project import Project

from .support.flask import find_apps
from ._app_factory_contexts import is_test_file
from ._app_factory_migration import Migration


class AppFactory(Codemod):
    name = "app-factory"
    summary = "Module-level Flask app -> create_app() factory, extensions.py, views on a Blueprint."
    order = 10
    needles = ("Flask",)
    uses_index = True
    options = (
        Option("allow_dynamic_endpoints", bool, False,
               "migrate even when url_for() receives computed endpoint names (each is reported: qualify "
               "the names it receives by hand, e.g. a navigation macro's arguments)"),
    )
    explain = '''\
Rewrites a legacy app whose `app = Flask(__name__)` lives at module level (in a module or
a package's __init__.py) into the application-factory shape, across the whole project,
as one change (every file or none):

* `extensions.py` beside the app module holds the extension objects, created without
  the app (`db = SQLAlchemy()`; constructor arguments other than the app are kept). An
  extension bound in another module (`db = SQLAlchemy(app)` in models.py) stays there,
  unbound, and the factory calls its init_app.
* `create_app(config=None)` is written in the app module itself, so `root_path`,
  templates, static files, the instance folder and the logger name stay the same. It
  creates the app with the legacy call, runs the legacy config statements in order,
  applies `config` (a mapping), calls `init_app` in the legacy order (with extra
  arguments: `migrate.init_app(app, db)`), runs the other set-up statements, imports
  the view modules and registers their blueprints, registers hooks that have no
  blueprint form (`teardown_appcontext`, `shell_context_processor`), returns the app.
* Views stay in their module and move onto a Blueprint there (`main` when one module
  has views, else the module's name). App-wide hooks take the `app_*` blueprint forms
  (`before_app_request`, `app_errorhandler`, ...); CLI commands stay top-level
  (`cli_group=None`). Inside functions, `app.config`/`app.logger` become `current_app`.
* Endpoint names are qualified: `url_for("index")` -> `url_for("main.index")` in Python
  and Jinja templates (not inside `{% raw %}` or `{# #}`), `login_manager.login_view`,
  `request.endpoint` comparisons, `app.view_functions["index"]`.
* A module-level `log = app.logger` becomes `logging.getLogger(__name__)` (the same
  logger). Module-level calls that need the app (`db.create_all()`, or `init_db()` whose
  body uses `app`) run in the factory inside `app.app_context()`; in the `__main__`
  block they get the same context. `gunicorn app:app` in a Procfile, Dockerfile,
  .flaskenv, ... becomes `wsgi:app`.
* Imports elsewhere follow: `from app import db` -> `from extensions import db`; view
  modules lose `from app import app`; tests and scripts import `app` from a generated
  `wsgi.py` (`app = create_app()`, also the target of `flask run` and `gunicorn wsgi:app`),
  and `app_module.app` becomes `wsgi.app`. An existing `wsgi.py` that imported the app
  calls the factory instead.
  An `if __name__ == "__main__":` block gets `app = create_app()`.

Nothing is written, and each reason is reported with file:line, when the app is used at
import time in a way the factory cannot take over: conditional routes, `app` in
decorator arguments or default values, values derived from the app at module level,
unknown `SomeExtension(app)` calls (flask_restful `Api(app)`, Celery),
`from app import *`, an `extensions.py` or `wsgi.py` that already exists,
`url_for(variable)` in Python or a template (unless `allow-dynamic-endpoints` is set:
then each is a warning to fix by hand); and when a function whose `app` would become
`current_app` runs outside any app context: a console-script entry point (`setup.py`,
`setup.cfg`, `pyproject.toml`, `entry_points.txt`), a function called by another
module's function that no view, hook, command, task or thread reaches (a server
script's `main()`), or one that starts the app's server (`app.run()`) which the
`__main__` block does not reach (a plugin's command, called by the program hosting it),
or one run in another thread or process or by a job queue, or called from one (an rq or
APScheduler job, a Celery task, a Thread subclass's `run`, a thread or process started
at import time or outside a request, an exit or signal handler registered with `atexit`
or `signal`), and a `lambda` started or registered so whose own code reads the app; and
when a generator using the app is streamed after its view returns
(`return Response(generate())`, a view that yields), where the app context is gone,
unless it runs inside `stream_with_context` (wrapping the call or decorating the
generator), as Flask's streaming docs advise. A thread started in a request is no
problem when thread-context runs after app-factory (`--all`, or
`-c app-factory,thread-context`), which runs it in the request's app context; alone,
app-factory reports it. Apps already built by a factory are left alone.

Before (app.py):

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"
    db = SQLAlchemy(app)

    @app.route("/")
    def index():
        return redirect(url_for("hello"))

After (app.py; plus extensions.py with `db = SQLAlchemy()` and wsgi.py):

    from extensions import db
    bp = Blueprint("main", __name__)

    @bp.route("/")
    def index():
        return redirect(url_for("main.hello"))


    def create_app(config=None):
        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"
        if config is not None:
            app.config.from_mapping(config)
        db.init_app(app)
        app.register_blueprint(bp)
        return app
'''

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        apps = find_apps(project)
        module_level = [a for a in apps if a.kind == "module"]
        if not module_level:
            return changes
        in_tests = [a for a in module_level if is_test_file(a.path)]
        if len(module_level) - len(in_tests) == 1:
            for site in in_tests:  # a test's own throw-away app is not the project's app
                changes.report(site.path, site.line, f"`{site.var}` in a test module is left as it is",
                               Severity.INFO)
            module_level = [a for a in module_level if a not in in_tests]
        if len(module_level) > 1:
            for site in module_level:
                changes.report(site.path, site.line,
                               f"{len(module_level)} module-level Flask apps in this run: migrate one app per run "
                               "(pass its directory); nothing changed", Severity.WARNING)
            return changes
        site = module_level[0]
        if site.module_name is None:
            changes.report(site.path, site.line, "the app module is not importable by name; nothing changed",
                           Severity.WARNING)
            return changes
        Migration(project, site, changes, self.config["allow_dynamic_endpoints"]).run()
        return changes

