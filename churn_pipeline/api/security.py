"""API keys: who may call the scoring and data routes.

Every scoring and data router depends on :func:`api_access`. When ``CHURN_API_KEYS`` is set, a request
must carry one of the keys, as ``Authorization: Bearer <key>`` or as ``X-API-Key: <key>``; without one,
or with a wrong one, the answer is 401 with a ``WWW-Authenticate: Bearer`` challenge and a JSON
``detail`` saying what is missing. ``/health`` (orchestrator probes), the dashboard page with its
static files, and ``/docs`` / ``/openapi.json`` stay open; the dashboard's JavaScript asks for the key
once per browser tab and sends it with each of its data calls.

**Keys and their digests.** The environment holds only SHA-256 hex digests of the keys (comma-separated,
so several clients, or an old and a new key during a rotation, can be valid at once); a leaked
environment, compose file or process listing gives nobody a working key. Keys are random 256-bit
tokens, so a plain (unsalted, fast) SHA-256 is the right hash: there is nothing to guess, and a slow
password hash would cost milliseconds on every request. The presented key is hashed and compared with
every configured digest by :func:`hmac.compare_digest` (constant time, and all digests are compared,
so timing says nothing about which key matched). Make a key and its digest with::

    python -m churn_pipeline.api.security          # prints a new key and the CHURN_API_KEYS entry for it
    printf %s "$KEY" | sha256sum                   # the digest of an existing key

**No keys configured** leaves the API open (local development, ``make run``, most tests) and logs a
warning at start; ``CHURN_API_REQUIRE_AUTH=true`` (set by the production compose file) turns that into a
start-up error instead.

**Cost.** The check runs on the hot ``POST /predict`` path: one SHA-256 of a short string and a few
constant-time comparisons, a few microseconds; :func:`api_access` is ``async`` because FastAPI runs a
plain ``def`` dependency in the threadpool, a thread hop that costs more than scoring one customer.

**Bodies come after the key.** FastAPI reads and parses a request body before it resolves any
dependency, so an anonymous client could make the server parse a 40 MB batch just to be refused.
:class:`KeyGate` therefore checks the key of every request with a body (POST, PUT, PATCH) before the
body is read, in front of the application; :func:`api_access` then trusts that check (and does its own
for every other request). Every route with a body is a scoring route that needs the key anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

API_KEY_HEADER = "X-API-Key"
REALM = "churn-api"
_CHECKED = "churn.api_key_checked"  # set in the ASGI scope by KeyGate once a request's key was accepted
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

MISSING_KEY = (f"an API key is required: send it as 'Authorization: Bearer <key>' or as "
               f"'{API_KEY_HEADER}: <key>'")
WRONG_KEY = "the API key is not valid (it is none of the keys this server accepts)"
BAD_AUTHORIZATION = "the Authorization header must be 'Bearer <key>'"

# Documentation for the OpenAPI page (its "Authorize" button). auto_error=False: the 401 is ours.
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, scheme_name="ApiKeyHeader", auto_error=False,
    description="An API key (when the server is configured with CHURN_API_KEYS).")
bearer_key = HTTPBearer(
    scheme_name="BearerKey", bearerFormat="API key", auto_error=False,
    description="The same API key as 'Authorization: Bearer <key>'.")


def digest(key: str) -> str:
    """The SHA-256 hex digest of a key (its UTF-8 bytes, as ``sha256sum`` sees them): what ``CHURN_API_KEYS``
    holds. Generated keys are ASCII."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The accepted keys (as digests) and the one check every route and :class:`KeyGate` use."""

    def __init__(self, sha256_hex: tuple[str, ...]):
        self._digests = tuple(bytes.fromhex(d) for d in sha256_hex)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def _valid(self, key: str) -> bool:
        # Header values arrive as latin-1 text (ASGI and Starlette decode them so): encoding them back
        # gives the very bytes the client sent, so a key is hashed as sha256sum would hash it.
        presented = hashlib.sha256(key.encode("latin-1", errors="replace")).digest()
        accepted = False
        for known in self._digests:  # no early exit: the time taken does not depend on which key matched
            accepted |= hmac.compare_digest(presented, known)
        return accepted

    def problem(self, api_key: str | None, authorization: str | None) -> str | None:
        """Why a request with these header values may not pass (None: it may).

        Either header may carry the key; with both, one valid key is enough."""
        keys = []
        if api_key and api_key.strip():
            keys.append(api_key.strip())
        bad_authorization = False
        if authorization and authorization.strip():
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                keys.append(token.strip())
            else:
                bad_authorization = True
        if not keys:
            return BAD_AUTHORIZATION if bad_authorization else MISSING_KEY
        return None if any([self._valid(key) for key in keys]) else WRONG_KEY


def unauthorized_headers(problem: str) -> dict[str, str]:
    """The RFC 6750 challenge: ``error="invalid_token"`` when a key was sent but refused."""
    challenge = f'Bearer realm="{REALM}"'
    if problem != MISSING_KEY:
        challenge += ', error="invalid_token"'
    return {"WWW-Authenticate": challenge}


async def api_access(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_key)] = None,
) -> None:
    """Let the request through, or answer 401 when keys are configured and it has no valid one.

    ``async`` on purpose: see the module docstring."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled or request.scope.get(_CHECKED):
        return
    problem = keys.problem(api_key, request.headers.get("authorization"))
    if problem is not None:
        raise HTTPException(401, problem, headers=unauthorized_headers(problem))


def caller_authenticated(request: Request) -> bool:
    """Whether this request may see details (True when no keys are configured); never raises."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled or request.scope.get(_CHECKED):
        return True
    return keys.problem(request.headers.get(API_KEY_HEADER), request.headers.get("authorization")) is None


class KeyGate:
    """ASGI middleware: a request with a body (POST, PUT, PATCH) needs a valid key before its body is
    read, so anonymous clients cannot make the server read and parse large bodies. Does nothing when no
    keys are configured."""

    def __init__(self, app, keys: ApiKeys):
        self.app, self.keys = app, keys

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.keys.enabled and scope["method"] in _BODY_METHODS:
            api_key = authorization = None
            for name, value in scope["headers"]:
                if name == b"x-api-key":
                    api_key = value.decode("latin-1")
                elif name == b"authorization":
                    authorization = value.decode("latin-1")
            problem = self.keys.problem(api_key, authorization)
            if problem is not None:
                response = JSONResponse({"detail": problem}, status_code=401, headers=unauthorized_headers(problem))
                await response(scope, receive, send)
                return
            scope[_CHECKED] = True
        await self.app(scope, receive, send)


def new_key() -> tuple[str, str]:
    """A new random key (256 bits, URL-safe) and its digest."""
    key = secrets.token_urlsafe(32)
    return key, digest(key)


def main(argv: list[str] | None = None) -> int:
    """``python -m churn_pipeline.api.security``: print a new key and the ``CHURN_API_KEYS`` entry for it.
    With ``--digest``, print the digest of a key read from standard input instead."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--digest"]:
        key = sys.stdin.readline().strip()
        if not key:
            print("no key on standard input", file=sys.stderr)
            return 2
        print(digest(key))
        return 0
    if argv:
        print("usage: python -m churn_pipeline.api.security [--digest < key-file]", file=sys.stderr)
        return 2
    key, key_digest = new_key()
    print(f"API key (give it to the client; it is not stored anywhere): {key}")
    print(f"its SHA-256, for CHURN_API_KEYS (comma-separate several):   {key_digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
