import httpx
import requests
from flask import current_app


def latest_rates():
    response = requests.get(current_app.config["RATES_URL"], timeout=(3.05, 10))
    response.raise_for_status()
    return response.json()


async def fetch_both(first, second):
    async with httpx.AsyncClient(timeout=5) as client:
        a = await client.get(first)
        b = await client.get(second)
    return a.json(), b.json()
