"""A real SMTP server on 127.0.0.1 for the mailer's tests (aiosmtpd, Debian's
python3-aiosmtpd): STARTTLS (or implicit TLS for smtps://) with a throwaway certificate
made by `openssl`, AUTH PLAIN/LOGIN required, every accepted message recorded.

    smtp = SmtpServer(users={"mailer": "s3cret"})
    smtp.start()
    smtp.url, smtp.ca            # for the agent's [smtp] url and ca
    smtp.fail_next("451 4.3.0 try again", "451 4.3.0 try again")   # then 250
    smtp.always = "554 5.7.1 refused"                                # every message
    smtp.delay = 2.0             # seconds before the final 250 (a kill lands inside)
    smtp.frozen = True           # every final answer held until it is False again
    smtp.waiting                 # messages whose final answer is held now
    smtp.messages                # [Received], only those answered with 250
    SmtpServer(maildir=path)     # each of them also written to path/NNNN.eml
    smtp.stop()

A message counts as received only when the server answered 250: a client that goes
away while the server waits (`delay`) cancels the exchange, as with a real server that
had not yet taken responsibility for the message.
"""

import asyncio
import email
import email.policy
import os
import ssl
import subprocess
import threading
from collections import deque
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import harness


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    data: bytes
    login: str          # the AUTH user, None without AUTH
    tls: bool           # the message came over TLS

    @property
    def message(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def message_id(self):
        return self.message["Message-ID"]


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1/localhost, readable by the agent's user;
    returns (cert, key) paths. The certificate is its own CA for [smtp] ca."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    os.chmod(cert, 0o644)
    return cert, key


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.server.rcpt_response:
            return self.server.rcpt_response
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        s = self.server
        with s.lock:
            s.attempts += 1
            reply = s.always or (s.replies.popleft() if s.replies else None)
        with s.lock:
            s.waiting += 1
        try:
            if s.delay:
                await asyncio.sleep(s.delay)    # cancelled if the client goes away
            while s.frozen:
                await asyncio.sleep(0.01)
        finally:
            with s.lock:
                s.waiting -= 1
        if reply:
            return reply
        login = (session.auth_data.login.decode()
                 if isinstance(session.auth_data, LoginPassword) else None)
        data = bytes(envelope.original_content or envelope.content)
        with s.lock:
            s.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data,
                                       login, s.implicit_tls or session.ssl is not None))
            n = len(s.messages)
        if s.maildir:
            # one file per accepted message, as a mail client would save it (the demo's sink)
            (s.maildir / f"{n:04d}.eml").write_bytes(data)
        return "250 2.0.0 OK queued"


class SmtpServer:
    def __init__(self, users=None, implicit_tls=False, tls=True, rundir=None, maildir=None):
        """maildir: also write every accepted message there as NNNN.eml."""
        self.users = dict(users or {"mailer": "mailer-password"})
        self.maildir = maildir
        self.implicit_tls = implicit_tls
        self.tls = tls              # False: no STARTTLS offered, AUTH in the clear allowed
        self.rundir = rundir or harness.make_run_dir("smtp-")
        self.cert, self.key = make_cert(self.rundir)
        self.lock = threading.Lock()
        self.messages = []
        self.attempts = 0           # DATA commands seen, whatever the answer
        self.logins = []            # (mechanism, user, ok)
        self.replies = deque()      # answers to give instead of 250, one per message
        self.always = None          # an answer for every message
        self.rcpt_response = None   # an answer to RCPT TO instead of 250
        self.delay = 0.0
        self.frozen = False
        self.waiting = 0
        self.port = None
        self.controller = None

    # -- control --------------------------------------------------------------------------
    def fail_next(self, *replies):
        with self.lock:
            self.replies.extend(replies)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and self.users.get(auth_data.login.decode()) == auth_data.password.decode())
        with self.lock:
            self.logins.append((mechanism, auth_data.login.decode()
                                if isinstance(auth_data, LoginPassword) else None, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        self.port = harness.free_port()
        kw = dict(hostname="127.0.0.1", port=self.port, authenticator=self._authenticate,
                  auth_required=True, decode_data=False,
                  # aiosmtpd counts only STARTTLS as TLS: with implicit TLS it would
                  # never offer AUTH
                  auth_require_tls=self.tls and not self.implicit_tls)
        if self.implicit_tls:
            kw["ssl_context"] = ctx
        elif self.tls:
            kw.update(tls_context=ctx, require_starttls=True)
        self.controller = Controller(_Handler(self), **kw)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def url(self):
        return f"{'smtps' if self.implicit_tls else 'smtp'}://127.0.0.1:{self.port}"

    @property
    def ca(self):
        return str(self.cert)

    def received(self):
        with self.lock:
            return list(self.messages)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
