from flask import Flask, abort, render_template

app = Flask(__name__)


@app.route("/pages/<name>")
def page(name):
    if name not in ("about", "contact"):
        abort(404)
    return render_template(f"{name}.html")


@app.route("/teapot")
def teapot():
    return render_template("teapot.html"), 418
