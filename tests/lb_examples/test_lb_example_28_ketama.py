"""Lesson 28: under Ketama hashing of the path, /user/N always reaches the same backend."""

from lbex_support import BLUE, GREEN, curl_bodies, running

USERS = range(1, 21)


def test_each_user_path_sticks_to_one_backend(lab):
    with running("examples/28_consistent_hashing.py", 6172) as ex:
        urls = [f"http://127.0.0.1:6172/user/{i}" for i in USERS]
        # The lesson's loop: each path twice in a row ...
        twice = curl_bodies([u for u in urls for _ in range(2)])
        assert all(r.status == 200 for r in twice)
        first = {i: twice[2 * k].body for k, i in enumerate(USERS)}
        assert all(twice[2 * k + 1].body == first[i] for k, i in enumerate(USERS))
        # ... and again, in reverse order and on a new connection: nothing moves.
        again = curl_bodies(list(reversed(urls)))
        assert {i: r.body for i, r in zip(reversed(USERS), again)} == first
        # Different paths spread over both backends.
        assert set(first.values()) == {BLUE, GREEN}
        ex.wait_log(r"Path '/user/1' hashed to upstream: Backend\(addr='127\.0\.0\.1:1808[01]'")


def test_query_string_is_not_part_of_the_key(lab):
    with running("examples/28_consistent_hashing.py", 6172):
        plain = curl_bodies([f"http://127.0.0.1:6172/user/{i}" for i in USERS])
        queried = curl_bodies([f"http://127.0.0.1:6172/user/{i}?v={i * 7}" for i in USERS])
        assert [r.body for r in queried] == [r.body for r in plain]
