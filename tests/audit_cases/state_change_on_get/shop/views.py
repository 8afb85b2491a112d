from flask import redirect, request, session, url_for

from . import app
from . import services
from .db import db
from .services import Loyalty, describe, forget_customer


@app.route("/customers/<int:cid>/forget")
def forget(cid):
    forget_customer(db.get_or_404(Customer, cid))
    return redirect(url_for("index"))


@app.route("/customers/<int:cid>/visit", methods=("GET",))
def visit(cid):
    services.notify_crm(cid)
    return "", 204


@app.get("/customers/<int:cid>/award")
def award(cid):
    Loyalty.award(db.get_or_404(Customer, cid), 10)
    return "ok"


@app.route("/cleanup")
def cleanup():
    Customer.query.filter_by(active=False).delete()
    return "done"


# -- not reported ------------------------------------------------------------------

@app.route("/customers/<int:cid>")
def show(cid):
    seen = set()
    seen.add(cid)
    session["last_seen"] = cid
    session.clear()
    return describe(db.get_or_404(Customer, cid))


@app.route("/customers/<int:cid>/delete", methods=["POST"])
def delete(cid):
    forget_customer(db.get_or_404(Customer, cid))
    return redirect(url_for("index"))


@app.route("/customers/<int:cid>/edit", methods=["GET", "POST"])
def edit(cid):
    customer = db.get_or_404(Customer, cid)
    if request.method == "POST":
        customer.email = request.form["email"]
        db.session.commit()
    return describe(customer)


@app.route("/dynamic", methods=ALLOWED_METHODS)
def dynamic():
    db.session.commit()
    return "?"


@app.post("/customers/<int:cid>/award")
def award_post(cid):
    Loyalty.award(db.get_or_404(Customer, cid), 10)
    return "ok"


def export_and_forget(cid):
    forget_customer(db.get_or_404(Customer, cid))
    return "exported"


def purge(cid):
    forget_customer(db.get_or_404(Customer, cid))
    return "purged"


app.add_url_rule("/customers/<int:cid>/export", "export", export_and_forget)
app.add_url_rule("/customers/<int:cid>/purge", view_func=purge, methods=["POST"])
