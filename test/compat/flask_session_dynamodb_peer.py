"""Flask-Session 0.8's DynamoDB backend (flask_session/dynamodb/dynamodb.py):
its table and its item code reproduced with Debian's python3-boto3, through
boto3's resource API as Flask-Session uses it.

One JSON command on stdin, one JSON answer on stdout. Every command takes
"config" (keyword arguments of boto3.resource("dynamodb", ...): endpoint_url,
region_name, aws_access_key_id, aws_secret_access_key) and optionally "table"
("Sessions") and "key_prefix" ("session:"):
  {"op": "create"}
      create_table (hash key "id" S, PAY_PER_REQUEST), then the table_exists
      waiter; an existing table is fine -> {"created": bool}
  {"op": "write", "sid": S, "format": "msgpack"|"json", "session"?: {...}, "lifetime"?: seconds}
      update_item SET val = :value, expiration = :exp -> {"expiration": "<the Decimal>"}
  {"op": "read", "sid": S, "format"?: ...}
      get_item; 0.8.0 does not look at expiration -> {"session": {...} | null,
      "expiration": "<Decimal>" | null, "types": {attribute: DynamoDB type}}
Session values use describe_value's $-markers both ways.

0.8.0 never enables TTL: its update_time_to_live call reads self.table_name
before anything sets it, and the AttributeError is swallowed with the
"table already exists" case. This peer does the same (it makes no such call).
"""
import json
import sys
from datetime import datetime, timedelta
from decimal import Decimal

import boto3

from flask_session_records import KEY_PREFIX, LIFETIME_SECONDS, decode, describe, encode, session_from


def create(resource, table, command):
    try:
        resource.create_table(
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            TableName=table.name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except resource.meta.client.exceptions.ResourceInUseException:
        return {"created": False}
    # Flask-Session waits with the waiter's default 20 s delay; a short one for tests.
    resource.meta.client.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 0.2})
    return {"created": True}


def write(resource, table, command):
    store_id = command.get("key_prefix", KEY_PREFIX) + command["sid"]
    expiration = datetime.utcnow() + timedelta(seconds=command.get("lifetime", LIFETIME_SECONDS))
    # As 0.8.0 does: timestamp() of a naive UTC datetime reads it as local time,
    # so the epoch is off by the UTC offset unless the process runs with TZ=UTC.
    exp = Decimal(expiration.timestamp())
    table.update_item(
        Key={"id": store_id},
        UpdateExpression="SET val = :value, expiration = :exp",
        ExpressionAttributeValues={
            ":value": encode(session_from(command), command.get("format", "msgpack")),
            ":exp": exp,
        },
    )
    return {"expiration": str(exp)}


def read(resource, table, command):
    store_id = command.get("key_prefix", KEY_PREFIX) + command["sid"]
    document = table.get_item(Key={"id": store_id}).get("Item")
    if not document:
        return {"session": None, "expiration": None, "types": {}}
    session = decode(bytes(document.get("val").value), command.get("format", "msgpack"))
    # The wire types, which the resource API hides (it turns B into Binary and N into
    # Decimal), from a plain client: the resource's own client converts values too.
    plain = boto3.client("dynamodb", **command["config"])
    raw = plain.get_item(TableName=table.name, Key={"id": {"S": store_id}})["Item"]
    return {
        "session": describe(session),
        "expiration": str(document["expiration"]) if "expiration" in document else None,
        "types": {name: next(iter(value)) for name, value in raw.items()},
    }


OPS = {"create": create, "write": write, "read": read}


def main():
    command = json.load(sys.stdin)
    resource = boto3.resource("dynamodb", **command["config"])
    table = resource.Table(command.get("table", "Sessions"))
    print(json.dumps(OPS[command["op"]](resource, table, command)))


main()
