import subprocess
import time as t

import httpx
import requests as http
from flask import Flask, jsonify

import geo
from tasks import celery

app = Flask(__name__)


@app.route("/weather")
def weather():
    data = http.get("https://api.example.com/weather",
                    params={"q": "Paris"}).json()
    return jsonify(data)


@app.route("/weather/fast")
def weather_fast():
    return http.get("https://api.example.com/weather", timeout=2).json()


@app.post("/reports")
def report():
    t.sleep(2)  # "let the replica catch up"
    out = subprocess.check_output(["make-report", "--fast"])
    subprocess.run(["cleanup"], timeout=30, check=True)
    return out


@app.get("/where")
def where():
    return geo.locate("1.2.3.4")


@app.get("/where/again")
def where_again():
    return geo.locate("5.6.7.8")


@app.get("/status")
def status():
    a = httpx.get("https://status.example.com")  # httpx times out after 5 s by default
    b = httpx.get("https://status.example.com/slow", timeout=None)
    return {"a": a.status_code, "b": b.status_code}


@celery.task
def nightly():
    http.post("https://example.com/nightly")  # a task, not a view: may take its time
    t.sleep(60)
