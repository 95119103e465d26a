"""HTTP handlers of the vulnerable fixture project (written for secreview's tests)."""

import hashlib
import pickle
import sqlite3
import subprocess

import yaml
from flask import Flask, request

app = Flask(__name__)
AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Rk2Lm9v1Q"


@app.get("/users")
def users():
    db = sqlite3.connect("app.db")
    name = request.args["name"]
    return db.execute(f"SELECT * FROM users WHERE name = '{name}'").fetchall()


@app.post("/ping")
def ping():
    host = request.form["host"]
    return subprocess.check_output("ping -c 1 " + host, shell=True)


@app.post("/import")
def import_settings():
    return yaml.load(request.data)


@app.post("/session")
def restore_session():
    return pickle.loads(request.data)


def password_digest(password):
    return hashlib.md5(password.encode()).hexdigest()
