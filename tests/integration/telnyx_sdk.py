"""Drives the mock carrier's Telnyx with Telnyx's official Python SDK, unchanged.

Usage: telnyx_sdk.py BASE_URL API_KEY PUBLIC_KEY CAPTURE_PORT

The SDK sends a message to a number the mock owns, asking for its events at
a small server of this script (CAPTURE_PORT, where the mock also posts the
number's inbound message); the SDK's own webhook helper,
`client.webhooks.unwrap`, then checks every event the mock signed. Prints one
JSON object for the Rust test; exits non-zero on any unexpected failure.
"""

import http.server
import json
import sys
import threading
import time
from importlib.metadata import version

import telnyx
from telnyx import Telnyx

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
    base_url, api_key, public_key, port = sys.argv[1:5]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    client = Telnyx(api_key=api_key, public_key=public_key, base_url=base_url, max_retries=0)
    sent = client.messages.send(
        from_=FROM,
        to=TO,
        text="sms-canary sdk telnyx",
        webhook_url=f"http://127.0.0.1:{port}/status",
    )

    # message.sent, message.finalized, and the owned number's message.received.
    deadline = time.monotonic() + 10
    while len(captured) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)

    events = []
    for c in captured:
        event = client.webhooks.unwrap(c["body"], headers=c["headers"])
        tampered_refused = False
        try:
            client.webhooks.unwrap(c["body"].replace("sdk", "SDK"), headers=c["headers"])
        except Exception:
            tampered_refused = True
        data = event.data
        events.append(
            {
                "path": c["path"],
                "event_type": data.event_type,
                "message_id": data.payload.id,
                "to_status": data.payload.to[0].status if data.payload.to else None,
                "text": data.payload.text,
                "tampered_refused": tampered_refused,
            }
        )

    retrieved = client.messages.retrieve(sent.data.id)
    balance = client.balance.retrieve()

    errors = {}
    try:
        client.messages.send(from_=FROM, to="+15005550004", text="nope")
        errors["stop"] = None
    except telnyx.APIStatusError as e:
        errors["stop"] = {"status": e.status_code, "code": e.body["errors"][0]["code"]}
    try:
        Telnyx(api_key="wrong", base_url=base_url, max_retries=0).messages.send(
            from_=FROM, to=TO, text="nope"
        )
        errors["auth"] = None
    except telnyx.AuthenticationError as e:
        errors["auth"] = {"status": e.status_code, "code": e.body["errors"][0]["code"]}

    print(
        json.dumps(
            {
                "sdk_version": version("telnyx"),
                "sent": {
                    "id": sent.data.id,
                    "to_status": sent.data.to[0].status,
                    "from": sent.data.from_.phone_number,
                },
                "events": events,
                "retrieved_status": retrieved.data.to[0].status,
                "balance": str(balance.data.balance),
                "errors": errors,
            }
        )
    )
    server.shutdown()


if __name__ == "__main__":
    main()
