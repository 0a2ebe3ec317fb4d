"""Python session values as JSON with $-markers for the types JSON lacks,
so a test can compare what Python and nest-session each read."""
import base64
from datetime import datetime, timezone
from uuid import UUID


def describe(value):
    if hasattr(value, "__html__"):
        return {"$markup": str(value)}
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"$tuple": [describe(v) for v in value]}
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, datetime):
        return {"$date": value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    return value
