"""Flask-Session 0.8's SQLAlchemy backend (flask_session/sqlalchemy/sqlalchemy.py):
its table and its read, write and cleanup code reproduced with Debian's
python3-sqlalchemy (plus python3-psycopg2 for PostgreSQL, python3-pymysql for
MariaDB/MySQL; SQLite needs nothing more). Flask-SQLAlchemy's db.Model and
db.session become a declarative model and an ORM Session: the same SQL.

One JSON command on stdin, one JSON answer on stdout. Every command takes
"url" (an SQLAlchemy URL) and optionally "table" ("sessions"), "schema"
(none), "sequence" (none) and "key_prefix" ("session:"):
  {"op": "create"}
      creates the table as Flask-Session does at start, if missing -> {"ok": true}
  {"op": "write", "sid": S, "format": "msgpack"|"json", "session"?: {...}, "lifetime"?: seconds}
      _upsert_session: SELECT the row, then UPDATE it or INSERT one; COMMIT
      -> {"expiry": "<naive UTC, ISO 8601, always 6 fractional digits>"}
  {"op": "read", "sid": S, "format"?: ...}
      _retrieve_session_data: SELECT the row; an expired one is DELETEd
      -> {"session": {...} | null, "row": {"id", "expiry"} | null, "deleted_expired": bool}
  {"op": "cleanup"}
      _delete_expired_sessions: DELETE … WHERE expiry <= utcnow() -> {"deleted": n}
  {"op": "inspect"}
      the table as the database reports it -> {"columns", "primary_key", "unique", "indexes"}
Session values use describe_value's $-markers both ways.
"""
import json
import sys
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, LargeBinary, Sequence, String, create_engine, inspect
from sqlalchemy.orm import Session, declarative_base

from flask_session_records import KEY_PREFIX, LIFETIME_SECONDS, decode, describe, encode, retry_query, session_from


def session_model(command):
    """create_session_model(): the four columns, as Flask-Session declares them."""
    base = declarative_base()
    schema = command.get("schema")
    sequence = command.get("sequence")

    class FlaskSession(base):
        __tablename__ = command.get("table", "sessions")
        __table_args__ = {"schema": schema} if schema else {}

        id = Column(Integer, Sequence(sequence), primary_key=True) if sequence else Column(Integer, primary_key=True)
        session_id = Column(String(255), unique=True)
        data = Column(LargeBinary)
        expiry = Column(DateTime)

    return FlaskSession


def create(engine, model, command):
    model.__table__.create(bind=engine, checkfirst=True)
    return {"ok": True}


def write(engine, model, command):
    store_id = command.get("key_prefix", KEY_PREFIX) + command["sid"]
    expiry = datetime.utcnow() + timedelta(seconds=command.get("lifetime", LIFETIME_SECONDS))
    data = encode(session_from(command), command.get("format", "msgpack"))
    with Session(engine) as db:
        def upsert():
            record = db.query(model).filter_by(session_id=store_id).first()
            if record:
                record.data = data
                record.expiry = expiry
            else:
                db.add(model(session_id=store_id, data=data, expiry=expiry))
            db.commit()

        retry_query(upsert, db.rollback)
    return {"expiry": expiry.isoformat(timespec="microseconds")}


def read(engine, model, command):
    store_id = command.get("key_prefix", KEY_PREFIX) + command["sid"]
    with Session(engine) as db:
        def retrieve():
            record = db.query(model).filter_by(session_id=store_id).first()
            # SQL has no TTL: an expired row is deleted when read.
            if record and (record.expiry is None or record.expiry <= datetime.utcnow()):
                db.delete(record)
                db.commit()
                return None, True
            return record, False

        record, deleted = retry_query(retrieve, db.rollback)
        if record is None:
            return {"session": None, "row": None, "deleted_expired": deleted}
        session = decode(bytes(record.data), command.get("format", "msgpack"))
        row = {"id": record.id, "expiry": record.expiry.isoformat(timespec="microseconds")}
        return {"session": describe(session), "row": row, "deleted_expired": False}


def cleanup(engine, model, command):
    with Session(engine) as db:
        def delete_expired():
            deleted = db.query(model).filter(model.expiry <= datetime.utcnow()).delete(synchronize_session=False)
            db.commit()
            return deleted

        return {"deleted": retry_query(delete_expired, db.rollback)}


def inspect_table(engine, model, command):
    table = command.get("table", "sessions")
    schema = command.get("schema")
    inspector = inspect(engine)
    return {
        "columns": [
            # Compiled for the engine's dialect: str() leaves out MySQL's fractional seconds (DATETIME(6)).
            {"name": c["name"], "type": c["type"].compile(dialect=engine.dialect), "nullable": c["nullable"]}
            for c in inspector.get_columns(table, schema=schema)
        ],
        "primary_key": inspector.get_pk_constraint(table, schema=schema)["constrained_columns"],
        "unique": [u["column_names"] for u in inspector.get_unique_constraints(table, schema=schema)],
        "indexes": [
            {"columns": i["column_names"], "unique": bool(i["unique"])}
            for i in inspector.get_indexes(table, schema=schema)
        ],
    }


OPS = {"create": create, "write": write, "read": read, "cleanup": cleanup, "inspect": inspect_table}


def main():
    command = json.load(sys.stdin)
    engine = create_engine(command["url"])
    try:
        print(json.dumps(OPS[command["op"]](engine, session_model(command), command)))
    finally:
        engine.dispose()


main()
