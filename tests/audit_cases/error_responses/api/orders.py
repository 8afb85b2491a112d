from flask import jsonify, request

from api import app

ORDERS = {}


@app.get("/orders/<int:oid>")
def get_order(oid):
    if oid not in ORDERS:
        return jsonify(error="no such order"), 404
    return ORDERS[oid]


@app.post("/orders")
def create_order():
    payload = request.get_json(silent=True)
    if payload is None:
        return jsonify({"error": "send JSON"}), 400
    if payload.get("quantity", 0) > 10:
        return jsonify({"message": "too many", "code": 7}), 409
    if "sku" not in payload:
        return {"detail": "sku missing"}, 422
    ORDERS[len(ORDERS) + 1] = payload
    return payload, 201
