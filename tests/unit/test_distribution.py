"""adapters.distribution's Pool: which client a topology's cookie Secret gets. The API is a
stand-in object passed in (a seam, as httpx's mock transport); no node is contacted."""

from __future__ import annotations

import base64
from typing import Any

from conclave.adapters.distribution import COOKIE_TTL_SECONDS, CookieRef, Pool
from conclave.errors import NotFoundError


class Secrets:
    """Answers GETs of Secrets from a dict: path → cookie."""

    def __init__(self, cookies: dict[str, str]) -> None:
        self.cookies = cookies

    async def get(self, path: str) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        if name not in self.cookies:
            raise NotFoundError(404, "NotFound", f"secrets {name!r} not found")
        return {"data": {"cookie": base64.b64encode(self.cookies[name].encode()).decode()}}


def ref(name: str) -> CookieRef:
    return CookieRef("prod", name, "cookie")


async def test_secrets_holding_one_cookie_share_one_client_and_another_cookie_gets_its_own() -> None:
    """Each client is the same hidden node: two with one cookie would replace each other's
    connection at every node they both reach, on every call."""
    pool = Pool(Secrets({"chat": "c1", "chat-copy": "c1", "other": "c2"}), "conclave-op@10.0.0.9")  # type: ignore[arg-type]
    try:
        chat, copy, other = [await pool.client(ref(name)) for name in ("chat", "chat-copy", "other")]
        assert chat is copy
        assert other is not chat
        assert {chat.own_name, other.own_name} == {"conclave-op@10.0.0.9"}
    finally:
        await pool.close()


async def test_a_rotated_cookie_gets_its_client_once_the_secret_is_read_again() -> None:
    now = [0.0]
    secrets = Secrets({"chat": "c1"})
    pool = Pool(secrets, "conclave-op@10.0.0.9", clock=lambda: now[0])  # type: ignore[arg-type]
    try:
        first = await pool.client(ref("chat"))
        secrets.cookies["chat"] = "c2"
        assert await pool.client(ref("chat")) is first  # read again only after the TTL
        now[0] = COOKIE_TTL_SECONDS + 1
        rotated = await pool.client(ref("chat"))
        assert rotated is not first
        del secrets.cookies["chat"]
        now[0] = 2 * COOKIE_TTL_SECONDS + 2
        assert await pool.client(ref("chat")) is rotated  # unreadable: the last cookie is kept
    finally:
        await pool.close()
