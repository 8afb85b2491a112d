from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)


@app.get("/ip")
def ip():
    return request.remote_addr


app = ProxyFix(app, x_for=1)
