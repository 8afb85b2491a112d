from flask import Flask, request

app = Flask(__name__)


@app.get("/ip")
def ip():
    return request.remote_addr
