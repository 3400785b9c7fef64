"""Token endpoints of the common issuers, for the login tests (test_logins.py): one aiohttp app
whose certificate names the issuers' hosts, so that ``resolve`` can send them here.

* ``POST /login/oauth/access_token``        GitHub OAuth (form or JSON, by Accept)
* ``POST /token``                           Google OAuth (oauth2.googleapis.com)
* ``POST /<tenant>/oauth2/v2.0/token``      Azure AD / Entra ID
* ``POST /`` with ``Action=AssumeRole``     AWS STS (XML)
* ``PUT  /-/user/org.couchdb.user:<name>``  npm login
* ``GET  /token``                           Docker registry token service
* ``GET  /files/config``                    the same kind of credential, not from a token endpoint

Each answer carries credentials made fresh per server (``TokenUpstream.issued``), in the shapes
the issuers use, so the tests can compare what the client got with what was sent.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import zlib

from aiohttp import web

from upstream import AppServer

TOKEN_HOSTS = [
    "github.com", "oauth2.googleapis.com", "login.microsoftonline.com", "sts.amazonaws.com",
    "registry.npmjs.org", "auth.docker.io", "files.test",
]

_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _crc_token(prefix: str) -> str:
    """GitHub and npm tokens: 30 random characters and their CRC-32 in base62."""
    body = _rand(string.ascii_letters + string.digits, 30)
    n, check = zlib.crc32(body.encode()), ""
    for _ in range(6):
        check = _B62[n % 62] + check
        n //= 62
    return prefix + body + check


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict) -> str:
    head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": _rand(string.hexdigits, 16)}).encode())
    body = _b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64url(secrets.token_bytes(256))}"


def fresh_credentials() -> dict:
    alnum = string.ascii_letters + string.digits
    return {
        "github": _crc_token("gho_"),
        "google_access": "ya29.a0" + _rand(alnum + "-_", 160),
        "google_refresh": "1//0g" + _rand(alnum + "-_", 100),
        "google_id": _jwt({"iss": "https://accounts.google.com", "sub": _rand(string.digits, 21),
                           "email": "dev@example.com", "aud": "client.apps.googleusercontent.com"}),
        "azure_access": _jwt({"aud": "https://graph.microsoft.com", "iss": "https://sts.windows.net/t/",
                              "oid": _rand(string.hexdigits, 32), "scp": "User.Read"}),
        "aws_key_id": "ASIA" + _rand(string.ascii_uppercase + "234567", 16),
        "aws_secret": _rand(alnum + "+/", 40),
        "aws_session": "IQoJb3JpZ2luX2VjE" + _rand(alnum + "+/", 300),
        "npm": _crc_token("npm_"),
        "docker": _jwt({"iss": "auth.docker.io", "sub": "alice", "access": [{"type": "repository"}]}),
    }


class TokenUpstream(AppServer):
    thread_name = "token-upstream"

    def __init__(self, leaf):
        super().__init__(leaf)
        self.issued = fresh_credentials()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/login/oauth/access_token", self._github)
        app.router.add_post("/token", self._google)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._azure)
        app.router.add_post("/", self._sts)
        app.router.add_put("/-/user/{user}", self._npm)
        app.router.add_get("/token", self._docker)
        app.router.add_get("/files/config", self._files)
        return app

    async def _github(self, request: web.Request):
        await request.read()
        c = self.issued["github"]
        if "json" in request.headers.get("accept", ""):
            return web.json_response({"access_token": c, "token_type": "bearer", "scope": "repo,gist"})
        return web.Response(text=f"access_token={c}&scope=repo%2Cgist&token_type=bearer",
                            content_type="application/x-www-form-urlencoded")

    async def _google(self, request: web.Request):
        await request.read()
        c = self.issued
        return web.json_response({
            "access_token": c["google_access"], "expires_in": 3599, "refresh_token": c["google_refresh"],
            "scope": "openid", "token_type": "Bearer",
            "id_token": c["google_id"],
        })

    async def _azure(self, request: web.Request):
        await request.read()
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": self.issued["azure_access"]})

    async def _sts(self, request: web.Request):
        form = await request.post()
        if form.get("Action") != "AssumeRole":
            return web.Response(status=400, text="unexpected action")
        c = self.issued
        xml = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:s3-access-example</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/xaccounts3access/s3-access-example</Arn>
    </AssumedRoleUser>
    <Credentials>
      <SecretAccessKey>{c["aws_secret"]}</SecretAccessKey>
      <SessionToken>{c["aws_session"]}</SessionToken>
      <Expiration>2030-01-01T00:00:00Z</Expiration>
      <AccessKeyId>{c["aws_key_id"]}</AccessKeyId>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
        return web.Response(text=xml, content_type="text/xml")

    async def _npm(self, request: web.Request):
        await request.read()
        user = request.match_info["user"].split(":")[-1]
        return web.json_response({"ok": True, "id": f"org.couchdb.user:{user}", "token": self.issued["npm"]},
                                 status=201)

    async def _docker(self, request: web.Request):
        t = self.issued["docker"]
        return web.json_response({"token": t, "access_token": t, "expires_in": 300,
                                  "issued_at": "2026-12-04T00:00:00Z"})

    async def _files(self, request: web.Request):
        return web.json_response({"note": "a config file", "token": self.issued["github"]})
