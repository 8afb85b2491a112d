import pytest

from shop import create_app
from shop.extensions import db


@pytest.fixture
def app():
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    app.debug = True
    with app.app_context():
        db.create_all()
    yield app


def test_customers(app):
    assert app.test_client().get("/customers").json == {"customers": []}
