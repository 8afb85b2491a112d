import os

from factory import create_app

if __name__ == "__main__":
    create_app().run(debug=True)
    create_app().run(debug=os.environ.get("FLASK_DEBUG") == "1")
