"""What a server's database holds, as text: a SQLite instance's dump and a PostgreSQL database's."""

import shutil
import sqlite3
import subprocess

from support.gatehouse import missing

MARKER = "enc:v1:"  # how a sealed secret starts


def sqlite_dump(workdir):
    connection = sqlite3.connect(workdir / "instance" / "gatehouse.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def postgres_dump(url):
    if shutil.which("pg_dump") is None:
        missing("pg_dump (postgresql-client)")
    return subprocess.run(["pg_dump", "--dbname", url], capture_output=True, text=True, check=True).stdout
