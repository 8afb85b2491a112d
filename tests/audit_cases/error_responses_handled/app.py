from flask import Flask, jsonify
from werkzeug.exceptions import InternalServerError as ISE

app = Flask(__name__)


def internal_error(error):
    return jsonify(error="internal server error"), 500


app.register_error_handler(ISE, internal_error)


@app.get("/items/<int:iid>")
def item(iid):
    if iid > 3:
        return jsonify(error="no such item"), 404
    if iid < 0:
        return jsonify(error="negative"), 400
    return {"id": iid}
