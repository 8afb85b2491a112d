import asyncio
import time

import aiohttp
import requests
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
db = SQLAlchemy(app)


@app.get("/ping")
async def ping():
    return "pong"


@app.get("/profile/<int:uid>")
async def profile(uid):
    user = db.session.get(User, uid)
    avatar = requests.get(user.avatar_url, timeout=5).content
    await asyncio.sleep(0)
    return avatar


@app.get("/slow")
async def slow():
    time.sleep(1)
    return "done"


# -- not reported ------------------------------------------------------------------

@app.get("/both")
async def both():
    async with aiohttp.ClientSession() as session:
        async with session.get("https://a.example.com") as a, session.get("https://b.example.com") as b:
            return {"a": await a.text(), "b": await b.text()}


@app.get("/gather")
async def gather():
    results = await asyncio.gather(fetch("a"), fetch("b"))
    return {"results": results}


async def fetch(name):
    requests.get(f"https://{name}.example.com", timeout=5)  # not a view
    return name


@app.get("/plain")
def plain():
    return "plain"


@app.get("/users/<int:uid>")
async def user(uid):
    async with async_session() as session:
        result = await session.execute(select(User).where(User.id == uid).limit(1))
        return {"name": result.scalar_one().name}
