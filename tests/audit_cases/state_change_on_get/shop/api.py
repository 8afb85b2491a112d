"""A FastAPI side-service living in the same repository: not Flask, not reported."""
from fastapi import FastAPI

from .db import db

api = FastAPI()


@api.get("/sync")
def sync():
    db.session.commit()
    return {}
