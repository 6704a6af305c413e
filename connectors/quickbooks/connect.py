"""``splice quickbooks-connect``: the first authorization of a QuickBooks company.

Intuit hands out a refresh token only through a person's consent in a browser, and the company id
(realmId) only on that redirect. The command prints the consent URL, takes the URL the browser was
redirected to (or the code and realm id), trades the code for tokens and stores them in the project's
object store under the key the connection reads, so ``refresh-token`` need not be configured at all.
Errors are one line; no token or secret is ever printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx

from connectors.quickbooks.auth import ALERTS_NAMESPACE, authorization_url, exchange_code
from connectors.quickbooks.config import AUTHORIZE_URL, TOKEN_URL, token_key
from runtime import SpliceError, StoredTokenSource, open_store, redact, register_secret

__all__ = ["DEFAULT_STORE", "add_parser", "run_connect"]

DEFAULT_STORE = "sqlite:///.splice/store.db"
PLAYGROUND_REDIRECT = "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the command on ``splice``'s sub-command parsers."""
    p = subparsers.add_parser(
        "quickbooks-connect", help="authorize access to a QuickBooks company and store its tokens",
        description="Prints the consent URL, then exchanges the code from the redirect for tokens "
        "and stores them where the quickbooks connection reads them.")
    p.add_argument("--client-id", default=os.environ.get("QUICKBOOKS_CLIENT_ID"),
                   help="Intuit app client id (default: $QUICKBOOKS_CLIENT_ID)")
    p.add_argument("--client-secret", default=os.environ.get("QUICKBOOKS_CLIENT_SECRET"),
                   help="Intuit app client secret (default: $QUICKBOOKS_CLIENT_SECRET; prefer the "
                   "variable to keep it out of the shell history)")
    p.add_argument("--redirect-uri", default=os.environ.get("QUICKBOOKS_REDIRECT_URI",
                                                            PLAYGROUND_REDIRECT),
                   help="redirect URI registered on the app (must match byte for byte)")
    p.add_argument("--authorize-url", default=AUTHORIZE_URL)
    p.add_argument("--token-url", default=TOKEN_URL)
    p.add_argument("--store", default=os.environ.get("SPLICE_STORE", DEFAULT_STORE),
                   help=f"object store URL (default: {DEFAULT_STORE})")
    p.add_argument("--state", help="state value for the consent URL (default: random)")
    p.add_argument("--redirect-url", help="the full URL the browser landed on after consent")
    p.add_argument("--code", help="authorization code (with --realm-id) instead of --redirect-url")
    p.add_argument("--realm-id", help="company id from the redirect (realmId)")
    p.set_defaults(func=run_connect)
    parser: argparse.ArgumentParser = p
    return parser


class _Usage(Exception):
    """A problem with the command's input, reported as one line."""


def _from_redirect(url: str, state: str | None) -> tuple[str, str]:
    query = parse_qs(urlsplit(url.strip()).query)
    if "error" in query:
        raise _Usage(f"consent was not given: {query['error'][0]}")
    code, realm = query.get("code", [""])[0], query.get("realmId", [""])[0]
    if not code or not realm:
        raise _Usage("the redirect URL has no code and realmId; paste the whole URL")
    if state and query.get("state", [""])[0] != state:
        raise _Usage("the redirect's state does not match this authorization; start again")
    return code, realm


async def _connect(args: argparse.Namespace) -> int:
    if not args.client_id or not args.client_secret:
        raise _Usage("--client-id and --client-secret (or $QUICKBOOKS_CLIENT_ID and "
                     "$QUICKBOOKS_CLIENT_SECRET) are required")
    register_secret(args.client_secret)
    state = args.state or secrets.token_urlsafe(16)
    if args.code:
        if not args.realm_id:
            raise _Usage("--code needs --realm-id")
        code, realm = args.code, args.realm_id
    else:
        redirect = args.redirect_url
        if not redirect:
            print("Open this URL in a browser, sign in and choose the company:\n")
            print(authorization_url(args.client_id, args.redirect_uri, state,
                                    authorize_url=args.authorize_url))
            print()
            redirect = await anyio.to_thread.run_sync(input, "Paste the URL you were sent to: ")
        code, realm = _from_redirect(redirect, state)
    register_secret(code)
    async with httpx.AsyncClient(timeout=30.0) as http:
        token = await exchange_code(http, token_url=args.token_url, client_id=args.client_id,
                                    client_secret=args.client_secret, code=code,
                                    redirect_uri=args.redirect_uri, realm_id=realm)
    store = open_store(args.store)
    async with store:
        await StoredTokenSource(store, token_key(realm)).seed(token)
        await store.delete(ALERTS_NAMESPACE, realm)
    print(f"Connected QuickBooks company {realm}. Tokens are stored in {args.store}; set "
          f"realm-id: \"{realm}\" on the quickbooks connection.")
    return 0


def run_connect(args: argparse.Namespace) -> int:
    """The command's handler: 0 when the tokens are stored, 1 with a one-line error otherwise."""
    try:
        return anyio.run(_connect, args)
    except _Usage as exc:
        print(f"splice quickbooks-connect: {exc}", file=sys.stderr)
    except SpliceError as exc:
        print(f"splice quickbooks-connect: {redact(exc.message)}", file=sys.stderr)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        print(f"splice quickbooks-connect: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
    except (EOFError, KeyboardInterrupt):
        print("splice quickbooks-connect: cancelled", file=sys.stderr)
    return 1
