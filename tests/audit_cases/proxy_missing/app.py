import logging

import flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

app = flask.Flask(__name__)
limiter = Limiter(get_remote_address, app=app)


@app.post("/login")
def login():
    logging.info("login attempt from %s", flask.request.remote_addr)
    link = flask.url_for("confirm", _external=True)
    return {"confirm": link}


@app.get("/confirm")
def confirm():
    return {"scheme": flask.request.scheme, "path": flask.request.path}
