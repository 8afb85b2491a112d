import os

from flask import Flask


def create_app():
    app = Flask(__name__, instance_relative_config=True)
    # the tutorial's placeholder, overridden by instance/config.py in production
    app.config.from_mapping(SECRET_KEY="dev")
    app.config.from_pyfile("config.py", silent=True)
    return app


def create_strict_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.secret_key = os.environ.get("SECRET_KEY")
    return app
