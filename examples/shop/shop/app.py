"""HTTP handlers of the example shop."""

from flask import Flask, abort, jsonify, request

from shop import db

app = Flask(__name__)


@app.get("/products/<int:product_id>")
def product(product_id):
    row = db.get_product(db.connect(), product_id)
    if row is None:
        abort(404)
    return jsonify(id=row[0], name=row[1], price=row[2])
