FLASK_APP=app
FLASK_ENV=development
