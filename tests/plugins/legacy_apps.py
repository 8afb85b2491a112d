"""Small legacy Flask apps in real git repositories, for the review, verify and batch tests.

Each app is the shape `teardown` migrates: plain SQLAlchemy with a module-level
`scoped_session` nobody removes, a module-level app, and a small pytest suite run with
`python -m pytest`. Variants differ in one way each (see `make_app`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Batch Test", "GIT_AUTHOR_EMAIL": "batch@example.invalid",
    "GIT_COMMITTER_NAME": "Batch Test", "GIT_COMMITTER_EMAIL": "batch@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}
VERIFY = f"{sys.executable} -m pytest -q -p no:cacheprovider"


def environment(**extra: str) -> dict[str, str]:
    """The environment for CLI subprocesses: git identity, and the test-only codemod."""
    path = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **GIT_ENV, "PYTHONPATH": path, "FLASK_REFACTOR_PLUGINS": "breaker_codemod:BreakTests",
            "NO_COLOR": "1", "COLUMNS": "200", **extra}


DATABASE = '''\
"""Database plumbing, straight from an old tutorial."""
import os

from sqlalchemy import Column, Integer, String, create_engine
from sqlalchemy.orm import {orm_imports}

engine = create_engine(os.environ.get("{upper}_DATABASE_URL", "sqlite://"))
{session}
Base = declarative_base()


class Item(Base):
    __tablename__ = "items"
    id = Column(Integer, primary_key=True)
    name = Column(String(80), nullable=False)
    price_cents = Column(Integer, nullable=False)
'''

APP = '''\
"""{title}: one module, grown over the years."""
from flask import Flask, jsonify

from database import Base, Item, db_session, engine

PRICE_FACTOR = 1  # break-tests: target
{extra}
app = Flask(__name__)
Base.metadata.create_all(engine)


@app.route("/items")
def items():
    # prices are stored in cents
    rows = db_session.query(Item).order_by(Item.id).all()
    return jsonify([{{"name": r.name, "price": r.price_cents * PRICE_FACTOR}} for r in rows])


@app.route("/items/<name>/<int:cents>", methods=["POST"])
def add_item(name, cents):
    db_session.add(Item(name=name, price_cents=cents))
    db_session.commit()
    return jsonify({{"added": name}}), 201
'''

TESTS = '''\
from app import app


def test_added_items_are_listed():
    client = app.test_client()
    assert client.post("/items/teapot/1800").status_code == 201
    assert client.get("/items").json[-1] == {{"name": "teapot", "price": {expected}}}
'''

GITIGNORE = "__pycache__/\n.pytest_cache/\n*.db\n"


SCOPED = "db_session = scoped_session(sessionmaker(bind=engine))"
# One session shared by every request: `teardown` cannot fix this, only report it.
UNSCOPED = "Session = sessionmaker(bind=engine)\ndb_session = Session()"


def make_app(root: Path, *, failing_baseline: bool = False, unmigratable: bool = False,
             breakable: bool = False) -> Path:
    """Write an app below `root`. `failing_baseline`: its suite fails before any change;
    `unmigratable`: a session `teardown` cannot migrate (it only reports it);
    `breakable`: whether `break-tests` finds its marker."""
    root.mkdir(parents=True)
    upper = root.name.upper()
    session = UNSCOPED if unmigratable else SCOPED
    orm_imports = "declarative_base, sessionmaker" if unmigratable else "declarative_base, scoped_session, sessionmaker"
    (root / "database.py").write_text(DATABASE.format(upper=upper, session=session, orm_imports=orm_imports))
    app = APP.format(title=root.name.title(), extra="")
    if not breakable:
        app = app.replace("  # break-tests: target", "")
    (root / "app.py").write_text(app)
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text(TESTS.format(expected=1799 if failing_baseline else 1800))
    (root / ".gitignore").write_text(GITIGNORE)
    return root


def git(root: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=environment(),
                               check=True)
    return completed.stdout.strip()


def init_repo(root: Path) -> Path:
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "legacy app")
    return root


def read_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts
            and ".pytest_cache" not in p.parts}
