from flask import Flask
from werkzeug.contrib.fixers import ProxyFix as Fix

api = Flask(__name__)
api.wsgi_app = Fix(api.wsgi_app)
application = Fix(api)
