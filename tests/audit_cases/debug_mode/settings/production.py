import os

DEBUG = os.environ.get("FLASK_DEBUG") == "1"
