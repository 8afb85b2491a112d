from flask import Flask, request
from werkzeug import secure_filename

app = Flask(__name__)


@app.post("/upload")
def upload():
    if request.is_xhr:
        return {"name": secure_filename(request.files["f"].filename)}
    return "no"
