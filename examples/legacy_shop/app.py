"""Shop: the app as it grew over the years. Everything hangs off this module."""
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("SHOP_DATABASE_URL", "sqlite:///shop.db")
app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
app.secret_key = os.environ.get("SHOP_SECRET", "dev")  # TODO: move to env in prod

db = SQLAlchemy(app)

# the views register themselves on `app` when imported
import views  # noqa: E402,F401

with app.app_context():
    db.create_all()  # first start: create the tables

if __name__ == "__main__":
    app.run(debug=True)
