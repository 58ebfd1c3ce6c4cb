"""Lesson 29: the session-id cookie is set once and keeps the user on one backend."""

from lbex_support import BLUE, GREEN, curl_head, running

BASE = "http://127.0.0.1:6173"


def test_cookie_set_once_and_user_stays_on_one_backend(lab, tmp_path):
    jar = str(tmp_path / "cookies.txt")
    with running("examples/29_sticky_sessions.py", 6173) as ex:
        # First visit: a new session and its cookie.
        status, headers, first = curl_head(f"{BASE}/", "-c", jar)
        assert status == 200 and first in (BLUE, GREEN)
        assert headers["set-cookie"] == ["session-id=user-100; Path=/"]
        ex.wait_log(r"No cookie found\. Generated new session id: user-100")

        # Returning visits, on any path, with the saved cookie: same backend, no new cookie.
        for path in ["/", "/different/path", "/cart", "/profile?tab=2", "/"]:
            status, headers, body = curl_head(f"{BASE}{path}", "-b", jar)
            assert status == 200
            assert body == first, path
            assert "set-cookie" not in headers
        ex.wait_log(r"Found existing session cookie: user-100")
        ex.wait_log(r"Session 'user-100' stuck to upstream: Backend\(addr='127\.0\.0\.1:1808[01]'")


def test_new_users_get_new_ids_spread_over_both_backends(lab):
    with running("examples/29_sticky_sessions.py", 6173):
        seen = {}
        for _ in range(16):
            _, headers, body = curl_head(f"{BASE}/")
            (cookie,) = headers["set-cookie"]
            seen[cookie.split(";")[0].split("=", 1)[1]] = body
        assert list(seen) == [f"user-{n}" for n in range(100, 116)]
        assert set(seen.values()) == {BLUE, GREEN}
        # Each id, sent back by hand, lands where it landed the first time.
        for sid, body in seen.items():
            _, headers, again = curl_head(f"{BASE}/elsewhere", "-H", f"Cookie: theme=dark; session-id={sid}")
            assert again == body and "set-cookie" not in headers
