"""The legacy entry point: Procfile runs this file directly."""
import os

import flask as f

app = f.Flask(__name__)
app.debug = True  # "temporary", 2019
app.config.update(DEBUG=True, JSONIFY_PRETTYPRINT_REGULAR=False)


@app.route("/")
def index():
    return "hello"


if __name__ == "__main__":
    app.run(host="0.0.0.0",
            port=int(os.environ.get("PORT", 5000)),
            debug=True)
