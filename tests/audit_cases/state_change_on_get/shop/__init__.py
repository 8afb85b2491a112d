from flask import Flask

from .db import db

app = Flask(__name__)
db.init_app(app)

from . import views, api  # noqa: E402,F401
