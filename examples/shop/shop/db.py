"""Database access for the example shop."""

import sqlite3


def connect(path="shop.db"):
    return sqlite3.connect(path)


def get_product(conn, product_id):
    cur = conn.execute("SELECT id, name, price FROM products WHERE id = ?", (product_id,))
    return cur.fetchone()
