from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["DEBUG"] = True
    app.config["TESTING"] = True
    return app


def run_debug_server():
    application = create_app()
    application.run(debug=False)


def run_dev_server():
    application = create_app()
    application.debug = True
    application.run(debug=True, use_reloader=True)
