"""A real SMTP server (aiosmtpd) for the email alert tests.

Usage: alert_smtp.py OUTDIR [PORT]

Listens on 127.0.0.1 on PORT (by default a free one; a given one lets a test
stop the server and start it again where clients expect it) and prints the
port on the first line of stdout. Each accepted message is saved as OUTDIR/NNNN.json with the envelope,
the headers, the content type, and the decoded text and HTML bodies (written under a temporary name and
renamed, so a reader never sees half a file). Recipients starting with
`reject` get a permanent 550 and those starting with `busy` a transient 451,
so the tests can see real SMTP replies. Exits when stdin is closed, so a
test process that dies never leaves the server running.
"""

import asyncio
import email
import email.policy
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        if local.startswith("busy"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        # A multipart/alternative mail: its text part is the body, its
        # HTML part is kept beside it.
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {name: str(value) for name, value in message.items()},
            "content_type": message.get_content_type(),
            "body": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        self.count += 1
        path = os.path.join(self.outdir, "%04d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


async def main(outdir, port):
    loop = asyncio.get_running_loop()
    handler = Handler(outdir)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp.test"), host="127.0.0.1", port=port
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
