from flask import Flask

server = Flask(__name__)
server.run(debug=True)
