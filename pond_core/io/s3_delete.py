"""Delete S3 keys exactly, with no side effects: batched DeleteObjects signed with SigV4.

pyarrow's S3 filesystem re-creates an empty "directory" marker object for the parent of every
prefix it empties, so an aborted write to a new prefix would leave `ds/_pond_staging/` behind
and the prefix would seem to exist. This module deletes the keys it is given and nothing else.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import re
import urllib.parse
from xml.sax.saxutils import escape

from pond_core.errors import PondStorageError
from pond_core.io.options import StorageOptions

BATCH = 1000  # DeleteObjects' limit


def delete_keys(options: StorageOptions, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), BATCH):
        _delete_batch(options, bucket, keys[start:start + BATCH])


def _delete_batch(options: StorageOptions, bucket: str, keys: list[str]) -> None:
    objects = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
    body = f'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>{objects}</Delete>'.encode()
    host, path = _location(options, bucket)
    headers = {"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode(), "content-type": "application/xml"}
    headers.update(_sign(options, "POST", host, path, "delete=", headers, body))
    status, text = _post(options, host, f"{path}?delete", headers, body)
    endpoint = options.endpoint_url or f"AWS S3 ({options.effective_region})"
    if status == 404 and "NoSuchBucket" in text:
        raise PondStorageError(f"bucket not found: {bucket!r} at {endpoint}")
    # DeleteObjects answers 200 and lists a failure per key; any failure fails the call.
    code = re.search(r"<Code>([^<]+)</Code>", text)
    if status in (401, 403) or (code and code.group(1) == "AccessDenied"):
        raise PondStorageError(f"access denied to s3://{bucket} at {endpoint}: cannot delete objects")
    if status >= 300 or code:
        reason = code.group(1) if code else f"HTTP {status}"
        raise PondStorageError(f"S3 delete in s3://{bucket} at {endpoint} failed: {reason}")


def _location(options: StorageOptions, bucket: str) -> tuple[str, str]:
    host = options.endpoint_host or f"s3.{options.effective_region}.amazonaws.com"
    if options.effective_url_style == "vhost":
        return f"{bucket}.{host}", "/"
    return host, f"/{urllib.parse.quote(bucket)}"


def _post(options: StorageOptions, host: str, target: str, headers: dict, body: bytes) -> tuple[int, str]:
    cls = http.client.HTTPSConnection if options.effective_use_ssl else http.client.HTTPConnection
    conn = cls(host, timeout=options.request_timeout)
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except OSError:
        endpoint = options.endpoint_url or host
        raise PondStorageError(f"cannot connect to the S3 endpoint {endpoint} (while deleting objects)") from None
    finally:
        conn.close()


def _sign(options: StorageOptions, method: str, host: str, path: str, query: str, headers: dict, body: bytes) -> dict:
    """AWS Signature Version 4 headers for one request."""
    payload = hashlib.sha256(body).hexdigest()
    now = dt.datetime.now(dt.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {**{k.lower(): v for k, v in headers.items()}, "host": host, "x-amz-date": amz_date,
              "x-amz-content-sha256": payload}
    if options.session_token:
        signed["x-amz-security-token"] = options.session_token
    out = {k: v for k, v in signed.items() if k not in headers and k != "host"}
    if options.anonymous:
        return out
    names = sorted(signed)
    canonical = "\n".join([
        method, path, query, "".join(f"{k}:{str(signed[k]).strip()}\n" for k in names), ";".join(names), payload,
    ])
    scope = f"{day}/{options.effective_region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + (options.secret_access_key or "")).encode()
    for part in (day, options.effective_region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={options.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out
