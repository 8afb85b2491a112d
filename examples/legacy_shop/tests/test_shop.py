import pytest

from app import app, db
from models import Product


@pytest.fixture()
def client():
    app.config["TESTING"] = True
    with app.app_context():
        db.create_all()
        db.session.add(Product(name="Teapot", price_cents=1800, stock=3))
        db.session.commit()
    yield app.test_client()
    with app.app_context():
        db.drop_all()


def test_index_lists_products(client):
    assert b"Teapot" in client.get("/").data


def test_unknown_product_is_404(client):
    response = client.get("/products/99")
    assert response.status_code == 404
    assert response.json["error"] == "no such product"
