import threading

from flask import jsonify, redirect, render_template, request, url_for

from analytics import record_view
from app import app, db
from models import Order, Product

current_email = None  # set per request from the header


@app.before_request
def load_customer():
    global current_email
    current_email = request.headers.get("X-Customer-Email")


@app.route("/")
def index():
    record_view(request.path)
    products = Product.query.order_by(Product.name).all()
    return render_template("index.html", products=products)


@app.route("/products/<int:product_id>")
def product(product_id):
    item = db.session.get(Product, product_id)
    if item is None:
        return jsonify({"error": "no such product"}), 404
    return jsonify(id=item.id, name=item.name, price_cents=item.price_cents, stock=item.stock)


def send_receipt(order_id):
    # runs in a thread: needs the app for config and the database
    order = db.session.get(Order, order_id)
    app.logger.info("receipt for order %s sent to %s", order.id, order.email)


@app.route("/orders", methods=["POST"])
def create_order():
    payload = request.get_json(silent=True) or {}
    if current_email is None:
        return jsonify({"error": "who are you?"}), 401
    item = db.session.get(Product, payload.get("product_id"))
    if item is None:
        return jsonify({"error": "no such product"}), 404
    quantity = int(payload.get("quantity", 1))
    if quantity > item.stock:
        return jsonify({"error": "not enough stock"}), 409
    item.stock -= quantity
    order = Order(product_id=item.id, quantity=quantity, email=current_email)
    db.session.add(order)
    db.session.commit()
    threading.Thread(target=send_receipt, args=(order.id,)).start()
    return redirect(url_for("product", product_id=item.id))
