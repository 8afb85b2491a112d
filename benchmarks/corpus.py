"""The benchmark's trees: real library code with small Flask apps in it, and one big app.

The Flask code is generated from templates written the way legacy apps are: a module-level
app with `db = SQLAlchemy(app)`, view modules importing the app (and the app importing them
at its bottom), a request global set in `before_request`, a thread started from a view, a
raw `scoped_session`, ad-hoc JSON error tuples, and a long view. Every codemod has work in
every view module. (One app per tree: app-factory migrates one app per run.)
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

# Real code the apps do not import (so it is not part of any app): the benchmark's
# "library" share. Files mentioning Flask are left out to keep the Flask share exact.
LIBRARY_PACKAGES = ["libcst", "click", "rich", "pygments", "_pytest", "jinja2", "werkzeug", "markupsafe",
                    "pathspec", "itsdangerous", "pluggy", "blinker"]

SETTINGS = """\
[tool.flask-refactor.extract-services]
max_statements = 9
max_lines = 30
"""

SHOP = {
    "__init__.py": '"""The {pkg} shop."""\n',
    "app.py": '''\
        """The {pkg} app: created at import time, as it grew."""
        import os

        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy

        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite://")
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "dev")
        db = SQLAlchemy(app)

        {view_imports}

        if __name__ == "__main__":
            app.run()
        ''',
    "models.py": '''\
        from {pkg}.app import db


        class Item(db.Model):
            id = db.Column(db.Integer, primary_key=True)
            sku = db.Column(db.String(32), unique=True)
            price = db.Column(db.Integer)
            stock = db.Column(db.Integer, default=0)


        class Order(db.Model):
            id = db.Column(db.Integer, primary_key=True)
            sku = db.Column(db.String(32))
            quantity = db.Column(db.Integer)
            total = db.Column(db.Integer)
        ''',
    "reports.py": '''\
        """Reports read a second database through a plain SQLAlchemy session."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.orm import scoped_session, sessionmaker

        engine = create_engine("sqlite://")
        ReportSession = scoped_session(sessionmaker(bind=engine))


        def daily_totals():
            return ReportSession.execute(text("SELECT 1")).all()
        ''',
    "pricing.py": '''\
        def unit_price(price, quantity):
            return price if quantity < 10 else price * 9 // 10


        def discount(coupon, amount):
            return amount // 10 if coupon == "TEN" else 0
        ''',
}


SHOP_VIEWS = '''\
        import threading

        from flask import jsonify, request

        from {pkg} import pricing
        from {pkg}.app import app, db
        from {pkg}.models import Item, Order
        from {pkg}.reports import daily_totals

        current_customer_{n} = None


        @app.before_request
        def load_customer_{n}():
            global current_customer_{n}
            current_customer_{n} = request.headers.get("X-Customer", "guest")


        def send_report_{n}(customer):
            print(customer, daily_totals(), Order.query.count())


        @app.route("/{n}/items/<sku>")
        def item_{n}(sku):
            found = Item.query.filter_by(sku=sku).first()
            if found is None:
                return jsonify({{"error": "no such item"}}), 404
            return jsonify(sku=found.sku, price=found.price, customer=current_customer_{n})


        @app.route("/{n}/reports", methods=["POST"])
        def start_report_{n}():
            threading.Thread(target=send_report_{n}, args=(current_customer_{n},)).start()
            return jsonify(status="started")


        @app.route("/{n}/orders", methods=["POST"])
        def new_order_{n}():
            sku = request.form.get("sku", "")
            quantity = request.form.get("quantity", type=int) or 1
            coupon = request.form.get("coupon")

            item = Item.query.filter_by(sku=sku).first_or_404()
            price = pricing.unit_price(item.price, quantity)
            reduction = pricing.discount(coupon, price * quantity)
            total = price * quantity - reduction
            order = Order(sku=item.sku, quantity=quantity, total=total)
            item.stock -= quantity
            db.session.add(order)
            db.session.commit()
            summary = f"{{quantity}} x {{item.sku}}"

            return jsonify(order=order.id, summary=summary, customer=current_customer_{n})
        '''


def write_shop(root: Path, pkg: str, view_modules: int) -> int:
    """One app package: the app, models, a report session, pricing and `view_modules`
    view modules. Returns how many files."""
    imports = "\n".join(f"from {pkg} import views_{n}  # noqa: E402,F401  (registers the routes)"
                        for n in range(view_modules))
    for name, template in SHOP.items():
        path = root / pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(template).format(pkg=pkg, view_imports=imports))
    for n in range(view_modules):
        (root / pkg / f"views_{n}.py").write_text(textwrap.dedent(SHOP_VIEWS).format(pkg=pkg, n=n))
    return len(SHOP) + view_modules


def build_library_tree(root: Path, flask_share: float) -> int:
    """Library code plus one shop app, sized so that `flask_share` of the files are the
    app's; returns how many Flask files."""
    count = 0
    for package in LIBRARY_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        source = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(source.rglob("*.py")):
            data = path.read_bytes()
            if b"flask" in data or b"Flask" in data or b"@generated" in data:
                continue
            out = root / package / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            count += 1
    (root / "pyproject.toml").write_text(SETTINGS)
    app_files = max(len(SHOP) + 1, round(count * flask_share / (1 - flask_share)))
    return write_shop(root, "shop", app_files - len(SHOP))


# -- (b) one big app -------------------------------------------------------------------------

BIG_APP_ROOT = '''\
    """The big app, still built at import time."""
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db = SQLAlchemy(app)

    {imports}
    '''

BIG_MODEL = '''\
    from bigapp import db
    {other}

    class Model{n}(db.Model):
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        amount = db.Column(db.Integer, default=0)

        def describe(self):
            return f"{{self.name}}: {{self.amount}}"
    '''

BIG_SERVICE = '''\
    from bigapp.models.model_{m} import Model{m}
    {other}

    TAX = 20


    def total_{n}(rows):
        subtotal = sum(row.amount for row in rows)
        return subtotal + subtotal * TAX // 100


    def find_{n}(name):
        return Model{m}.query.filter_by(name=name).first()
    '''

BIG_VIEWS = '''\
    import threading

    from flask import jsonify, request

    from bigapp import app, db
    from bigapp.models.model_{m} import Model{m}
    from bigapp.services import service_{s} as service
    from bigapp.db_session import Session

    last_query_{n} = None


    @app.before_request
    def remember_query_{n}():
        global last_query_{n}
        last_query_{n} = request.args.get("q")


    def audit_{n}(name):
        print("audit", name, Session.execute("SELECT {n}"), Model{m}.query.count())


    @app.route("/things{n}/<name>")
    def show_{n}(name):
        row = service.find_{s}(name)
        if row is None:
            return jsonify({{"error": "not found"}}), 404
        return jsonify(name=row.name, total=service.total_{s}([row]), q=last_query_{n})


    @app.route("/things{n}", methods=["POST"])
    def create_{n}():
        name = request.form.get("name", "")
        amount = request.form.get("amount", type=int) or 0
        note = request.form.get("note", "")

        row = Model{m}(name=name, amount=amount)
        db.session.add(row)
        db.session.commit()
        rows = Model{m}.query.filter_by(name=name).all()
        total = service.total_{s}(rows)
        label = f"{{name}} ({{len(rows)}})"
        threading.Thread(target=audit_{n}, args=(name,)).start()
        summary = note.strip() or label

        return jsonify(id=row.id, total=total, summary=summary)
    '''

BIG_SESSION = '''\
    from sqlalchemy import create_engine
    from sqlalchemy.orm import scoped_session, sessionmaker

    Session = scoped_session(sessionmaker(bind=create_engine("sqlite://")))
    '''


def build_big_app(root: Path, modules: int) -> None:
    """One Flask app of about `modules` modules: models, services and views (a third
    each) that import each other, a session module, and the app importing the views."""
    third = max(1, (modules - 6) // 3)
    pkg = root / "bigapp"
    for sub in ("models", "services", "views"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(SETTINGS)
    (pkg / "db_session.py").write_text(textwrap.dedent(BIG_SESSION))
    for n in range(third):
        other = f"from bigapp.models.model_{n - 1} import Model{n - 1}  # noqa: F401" if n else ""
        (pkg / "models" / f"model_{n}.py").write_text(textwrap.dedent(BIG_MODEL).format(n=n, other=other))
        other = f"from bigapp.services.service_{n - 1} import total_{n - 1}  # noqa: F401" if n else ""
        (pkg / "services" / f"service_{n}.py").write_text(
            textwrap.dedent(BIG_SERVICE).format(n=n, m=n, other=other))
        (pkg / "views" / f"views_{n}.py").write_text(textwrap.dedent(BIG_VIEWS).format(n=n, m=n, s=n))
    imports = "\n".join(f"from bigapp.views import views_{n}  # noqa: E402,F401" for n in range(third))
    (pkg / "__init__.py").write_text(textwrap.dedent(BIG_APP_ROOT).format(imports=imports))
