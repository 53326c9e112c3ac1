"""The one-shot peer: the round trip `sms-canary check` makes, written with
Twilio's official Python SDK as a user would script it.

Usage: twilio_roundtrip.py BASE_URL ACCOUNT_SID AUTH_TOKEN LISTEN_PORT

Listens for the inbound webhook on 127.0.0.1:LISTEN_PORT, sends one message
carrying a random token through the SDK (pointed at BASE_URL), waits for the
signed webhook with that token, checks its signature with the SDK's
RequestValidator, prints the latency and exits 0 (1 on timeout or a bad
signature).
"""

import http.server
import secrets
import sys
import threading
import time
import urllib.parse

from twilio.request_validator import RequestValidator
from twilio.rest import Client

TO = "+15005550100"
FROM = "+15005550006"


def main():
    base_url, account_sid, auth_token, port = sys.argv[1:5]
    port = int(port)
    token = secrets.token_hex(5)
    validator = RequestValidator(auth_token)
    arrived = threading.Event()
    verdict = {}

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            params = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            url = "http://127.0.0.1:%d%s" % (port, self.path)
            valid = validator.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
            self.send_response(200 if valid else 403)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(b"<Response/>")
            if valid and token in params.get("Body", ""):
                verdict["at"] = time.monotonic()
                arrived.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    client = Client(account_sid, auth_token)
    client.api.base_url = base_url
    t0 = time.monotonic()
    message = client.messages.create(to=TO, from_=FROM, body="sdk canary %s" % token)
    # No server.shutdown(): it waits out serve_forever's poll interval (0.5 s),
    # which would bill the SDK for time the round trip does not take.
    ok = arrived.wait(10)
    if not ok:
        print("no signed arrival for %s within 10 s" % message.sid, file=sys.stderr)
        return 1
    print("ok latency_ms=%.1f" % ((verdict["at"] - t0) * 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
