import os

from flask import Flask, Markup, send_file
from flask.ext.sqlalchemy import SQLAlchemy
from werkzeug.urls import url_quote

import flask

app = Flask(__name__)
app.config["JSON_AS_ASCII"] = False
app.config.update(JSON_SORT_KEYS=False)
db = SQLAlchemy(app)


@app.before_first_request
def seed():
    db.create_all()


@app.route("/report")
def report():
    return send_file("report.pdf", as_attachment=True,
                     attachment_filename="report.pdf")


@app.route("/ctx")
def ctx():
    return str(flask._app_ctx_stack.top)


if os.environ.get("FLASK_ENV") == "development":
    app.logger.setLevel("DEBUG")
os.environ["FLASK_ENV"] = "production"

# -- not reported --------------------------------------------------------------------
from markupsafe import escape  # noqa: E402
from werkzeug.utils import secure_filename  # noqa: E402

app.json.ensure_ascii = False
before_first_request = "a variable that merely shares the name"
print("set FLASK_ENV to production in the docs")
