from app import app


def test_debug():
    app.debug = True
    app.config["DEBUG"] = True
