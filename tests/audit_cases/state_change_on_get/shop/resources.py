from flask.views import MethodView

from .db import db
from .services import forget_customer


class CustomerAPI(MethodView):
    def get(self, cid):
        customer = db.get_or_404(Customer, cid)
        customer.last_seen = db.func.now()
        db.session.commit()
        return {"id": cid}

    def delete(self, cid):
        forget_customer(db.get_or_404(Customer, cid))
        return "", 204
