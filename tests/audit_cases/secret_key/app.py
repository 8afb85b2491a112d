import os
from secrets import token_hex as make_token

from flask import Flask

app = Flask(__name__)
app.secret_key = os.urandom(24)
app.config["SECRET_KEY"] = str(
    make_token(32)
)
app.config.from_mapping(SECRET_KEY="s3cr3t-2019")
