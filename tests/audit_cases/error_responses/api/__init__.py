from flask import Flask

app = Flask(__name__)


@app.errorhandler(404)
def not_found(error):
    return {"error": "not found"}, 404


from api import orders  # noqa: E402,F401
