"""Runs boto3 IoT client calls for the Rust tests of jobs-service, one per line.

Usage: python boto3_driver.py ENDPOINT_URL

Reads JSON lines {"op": "create_job", "args": {...}} from standard input, calls
boto3.client("iot").<op>(**args) against ENDPOINT_URL with dummy credentials, and writes one
JSON line per request: {"ok": RESPONSE} (ResponseMetadata removed, datetimes as epoch
seconds) or {"error": {"code": ..., "message": ..., "status": ...}} for a ClientError.
The op "http_post" with args {"path", "body"} posts raw JSON (the emulator's own operations,
which boto3 does not know). Exits at end of input.
"""

import datetime
import json
import sys
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions


def encode(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value)}")


def main():
    endpoint = sys.argv[1]
    client = boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    for line in sys.stdin:
        request = json.loads(line)
        op, args = request["op"], request.get("args", {})
        try:
            if op == "http_post":
                data = json.dumps(args["body"]).encode()
                post = urllib.request.Request(endpoint + args["path"], data=data, method="POST")
                with urllib.request.urlopen(post) as response:
                    result = {"ok": json.loads(response.read())}
            else:
                response = getattr(client, op)(**args)
                response.pop("ResponseMetadata", None)
                result = {"ok": response}
        except botocore.exceptions.ClientError as error:
            result = {
                "error": {
                    "code": error.response["Error"]["Code"],
                    "message": error.response["Error"]["Message"],
                    "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
                }
            }
        except urllib.error.HTTPError as error:
            result = {"error": {"code": error.headers.get("x-amzn-ErrorType"), "status": error.code}}
        sys.stdout.write(json.dumps(result, default=encode) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
