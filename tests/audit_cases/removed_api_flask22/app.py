from flask import Flask, Markup
from flask.json import JSONEncoder

app = Flask(__name__)
app.config["JSON_AS_ASCII"] = False


class Encoder(JSONEncoder):
    pass


app.json_encoder = Encoder


@app.before_first_request
def seed():
    pass


@app.get("/")
def index():
    return Markup("<b>hi</b>")
