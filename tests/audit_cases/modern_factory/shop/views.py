import logging

from flask import Blueprint, abort, request, session, url_for
from sqlalchemy import select

from .extensions import db
from .models import Customer, Order
from .rates import fetch_both, latest_rates

bp = Blueprint("shop", __name__)
log = logging.getLogger(__name__)


@bp.get("/customers")
def customers():
    seen = set()
    rows = db.session.scalars(select(Customer)).all()
    for customer in rows:
        seen.add(customer.email)
    session["last_list"] = len(seen)
    return {"customers": sorted(seen)}


@bp.route("/orders", methods=["GET", "POST"])
def orders():
    if request.method == "POST":
        order = Order(customer_id=request.json["customer_id"], total_cents=request.json["total_cents"])
        db.session.add(order)
        db.session.commit()
        log.info("order %s from %s", order.id, request.remote_addr)
        return {"id": order.id, "url": url_for("shop.order", order_id=order.id, _external=True)}, 201
    return {"orders": [o.id for o in db.session.scalars(select(Order))]}


@bp.get("/orders/<int:order_id>")
def order(order_id):
    found = db.session.get(Order, order_id) or abort(404)
    return {"id": found.id, "total_cents": found.total_cents}


@bp.post("/orders/<int:order_id>/cancel")
def cancel(order_id):
    db.session.delete(db.get_or_404(Order, order_id))
    db.session.commit()
    return "", 204


@bp.get("/rates")
def rates():
    return latest_rates()


@bp.get("/compare")
async def compare():
    a, b = await fetch_both(request.args["a"], request.args["b"])
    return {"a": a, "b": b}
