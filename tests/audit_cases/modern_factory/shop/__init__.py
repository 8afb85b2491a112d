"""The shop, built by `create_app()`: `flask --app shop run --debug` in development,
`gunicorn "shop:create_app()"` in production."""
import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from .extensions import db


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object("shop.config.Config")
    if test_config is None:
        app.config.from_prefixed_env()  # FLASK_SECRET_KEY, FLASK_SQLALCHEMY_DATABASE_URI, ...
    else:
        app.config.from_mapping(test_config)

    # Heroku's router is the one proxy in front of us.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    db.init_app(app)

    from . import views
    app.register_blueprint(views.bp)

    @app.errorhandler(HTTPException)
    def http_error(error):
        return jsonify(error=error.description), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error):
        logging.getLogger(__name__).exception("unhandled error")
        return jsonify(error="internal error"), 500

    return app
