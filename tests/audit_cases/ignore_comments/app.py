import os

from flask import Flask

app = Flask(__name__)
app.secret_key = "kept-for-now"  # flask-refactor: ignore[FR102]
app.debug = True  # flask-refactor: ignore[debug-mode]
# flask-refactor: ignore[FR101, FR102]
app.config["DEBUG"] = True
app.config["SECRET_KEY"] = os.urandom(8)  # flask-refactor: ignore
app.config.update(DEBUG=True)  # flask-refactor: ignore[FR102] (wrong rule: still reported)

if __name__ == "__main__":
    # a plain comment does not silence anything
    app.run(debug=True)
