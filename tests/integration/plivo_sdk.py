"""Drives the mock carrier's Plivo with Plivo's official Python SDK, unchanged.

Usage: plivo_sdk.py BASE_URL AUTH_ID AUTH_TOKEN CAPTURE_PORT

The SDK's base URL is Plivo's module constant, pointed at the mock. It sends
a message to a number the mock owns, asking for status callbacks at a small
server of this script (CAPTURE_PORT, where the mock also posts the number's
inbound message); the SDK's own helpers, `plivo.utils.validate_v3_signature`
and `plivo.utils.validate_signature` (V2), then check every callback the mock
signed. Prints one JSON object for the Rust test; exits non-zero on any
unexpected failure.
"""

import http.server
import json
import sys
import threading
import time
import urllib.parse
from importlib.metadata import version

import plivo
import plivo.rest.client
from plivo import exceptions
from plivo.utils import validate_signature, validate_v3_signature

TO = "+15005550100"
FROM = "+15005550006"

captured = []


class Capture(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length).decode("utf-8")
        captured.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    base_url, auth_id, auth_token, port = sys.argv[1:5]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    # The SDK builds every message URL from this (it resets its base_uri to
    # it before each request).
    plivo.rest.client.PLIVO_API_BASE_URI = base_url + "/v1/Account"
    client = plivo.RestClient(auth_id, auth_token)
    sent = client.messages.create(
        src=FROM,
        dst=TO,
        text="sms-canary sdk plivo",
        url=f"http://127.0.0.1:{port}/status?run=abcdefghjk",
    )
    uuid = sent.message_uuid[0]

    # sent, delivered, and the owned number's inbound message.
    deadline = time.monotonic() + 10
    while len(captured) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)

    callbacks = []
    for c in captured:
        headers = {k.lower(): v for k, v in c["headers"].items()}
        params = dict(urllib.parse.parse_qsl(c["body"], keep_blank_values=True))
        uri = f"http://127.0.0.1:{port}{c['path']}"
        v3 = validate_v3_signature(
            "POST",
            uri,
            headers["x-plivo-signature-v3-nonce"],
            auth_token,
            headers["x-plivo-signature-v3"],
            params,
        )
        tampered = dict(params)
        tampered["To"] = "15005550199"
        v3_tampered = validate_v3_signature(
            "POST",
            uri,
            headers["x-plivo-signature-v3-nonce"],
            auth_token,
            headers["x-plivo-signature-v3"],
            tampered,
        )
        v2 = validate_signature(
            uri,
            headers["x-plivo-signature-v2-nonce"],
            headers["x-plivo-signature-v2"],
            auth_token,
        )
        callbacks.append(
            {
                "path": c["path"],
                "status": params.get("Status"),
                "text": params.get("Text"),
                "message_uuid": params.get("MessageUUID"),
                "v3": v3,
                "v3_tampered": v3_tampered,
                "v2": v2,
            }
        )

    fetched = client.messages.get(uuid)
    account = client.account.get()

    errors = {}
    try:
        client.messages.create(src=FROM, dst="+15005550001", text="nope")
        errors["invalid"] = None
    except exceptions.ValidationError as e:
        errors["invalid"] = str(e)
    try:
        plivo.RestClient(auth_id, "wrong-token").messages.create(src=FROM, dst=TO, text="nope")
        errors["auth"] = None
    except exceptions.AuthenticationError as e:
        errors["auth"] = str(e)

    print(
        json.dumps(
            {
                "sdk_version": version("plivo"),
                "message_uuid": uuid,
                "message": sent.message,
                "callbacks": callbacks,
                "fetched_state": fetched.message_state,
                "fetched_direction": fetched.message_direction,
                "cash_credits": account.cash_credits,
                "errors": errors,
            }
        )
    )
    server.shutdown()


if __name__ == "__main__":
    main()
