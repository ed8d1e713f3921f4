"""The cityscapes-dataset.com login: credentials in, a session ``Cookie`` header out.

Reference behaviour (cityscapesScripts ``cityscapesscripts/download/downloader.py``, ``login``):
GET ``/login`` (which sets the session cookie), then POST ``/login`` with the form fields
``username``, ``password`` and ``submit=Login`` without following redirects; a ``302`` answer
means success, anything else means bad credentials. Packages are then fetched with the same
session from ``/file-handling/?packageID=N`` (1 = ``gtFine_trainvaltest.zip``,
3 = ``leftImg8bit_trainvaltest.zip``), which honours ``Range``.

The credentials are arguments: only the CLI reads them from options or the environment.
"""

from __future__ import annotations

import http.cookies
import urllib.error
import urllib.parse
import urllib.request

from panseg.download.http import USER_AGENT, DownloadError


class LoginError(DownloadError):
    """The Cityscapes server refused the credentials or answered unexpectedly."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def _cookies(headers, jar: dict[str, str]) -> None:
    for raw in headers.get_all("Set-Cookie") or []:
        parsed = http.cookies.SimpleCookie()
        try:
            parsed.load(raw)
        except http.cookies.CookieError:
            continue
        for name, morsel in parsed.items():
            jar[name] = morsel.value


def cityscapes_login(username: str, password: str, *, base_url: str,
                     timeout: float = 60.0) -> dict[str, str]:
    """Log in and return the request headers (``Cookie``) that authorise package downloads.

    Raises :class:`LoginError` for refused credentials, :class:`DownloadError` for network errors.
    """
    if not username or not password:
        raise LoginError("Cityscapes needs a username and a password")
    opener = urllib.request.build_opener(_NoRedirect)
    url = base_url.rstrip("/") + "/login"
    jar: dict[str, str] = {}

    def send(data: bytes | None) -> int:
        headers = {"User-Agent": USER_AGENT}
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        req = urllib.request.Request(url, data=data, headers=headers)
        try:
            with opener.open(req, timeout=timeout) as resp:
                _cookies(resp.headers, jar)
                return resp.status
        except urllib.error.HTTPError as exc:  # 3xx arrive here with redirects disabled
            _cookies(exc.headers, jar)
            if exc.code >= 400 and data is None:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            return exc.code
        except (OSError, urllib.error.URLError) as exc:
            raise DownloadError(f"{url}: {exc}") from exc

    send(None)
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "submit": "Login"}
    ).encode()
    status = send(form)
    if status != 302:
        raise LoginError(
            f"Cityscapes login as {username!r} failed (HTTP {status}, expected a 302 redirect): "
            "check the username/password (register at https://www.cityscapes-dataset.com/register/)"
        )
    if not jar:
        raise LoginError("Cityscapes login answered 302 but set no session cookie")
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
