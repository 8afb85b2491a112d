import requests

from .db import db


def forget_customer(customer):
    db.session.delete(customer)
    db.session.commit()


class Loyalty:
    @staticmethod
    def award(customer, points):
        customer.points += points
        customer.save()


def notify_crm(customer_id):
    requests.post("https://crm.example.com/hooks/visit", json={"id": customer_id}, timeout=5)


def describe(customer):
    return {"id": customer.id, "email": customer.email}
