"""Lessons 41 and 42: bearer token on 6185, Basic credentials on 6186."""

from limex_support import BLUE_BODY, curl, hits, retry_if_blue_vanishes, unique_path
from support import running


@retry_if_blue_vanishes
def test_bearer_token_missing_wrong_and_right(lab):
    with running("examples/41_auth_request.py", 6185) as ex:
        url = "http://127.0.0.1:6185" + unique_path("limex41")
        target = url[len("http://127.0.0.1:6185"):]

        missing = curl(url)
        assert missing.status == 401
        assert missing.header("www-authenticate") == "Bearer"
        ex.wait_log(r"Auth Failed: Missing Authorization header")

        wrong = curl(url, "-H", "Authorization: Bearer bad-token")
        assert wrong.status == 403
        assert wrong.header("www-authenticate") is None
        ex.wait_log(r"Auth Failed: Invalid Token")

        other_scheme = curl(url, "-H", "Authorization: Basic c3VwZXItc2VjcmV0LXRva2Vu")
        assert other_scheme.status == 401  # no bearer credentials at all

        assert hits(target) == 0  # nothing unauthenticated reached blue
        right = curl(url, "-H", "Authorization: Bearer super-secret-token")
        assert right.status == 200 and right.body == BLUE_BODY
        ex.wait_log(r"Auth Success: Valid Token")
        assert hits(target) == 1


@retry_if_blue_vanishes
def test_basic_auth_challenge_rejection_and_success(lab):
    with running("examples/42_basic_auth.py", 6186) as ex:
        target = unique_path("limex42")
        url = "http://127.0.0.1:6186" + target

        challenge = curl(url)
        assert challenge.status == 401
        assert challenge.header("www-authenticate") == 'Basic realm="PropylonProxy"'
        assert challenge.header("content-length") == "0"
        ex.wait_log(r"Auth Failed: Missing Header\. Sending Challenge")

        wrong = curl(url, "-u", "admin:wrong")
        assert wrong.status == 403
        unknown = curl(url, "-u", "root:password")
        assert unknown.status == 403
        ex.wait_count(r"Auth Failed: Wrong Credentials", 2)
        assert hits(target) == 0

        right = curl(url, "-u", "admin:password")
        assert right.status == 200 and right.body == BLUE_BODY
        # The header spelled out as in the lesson (base64 of admin:password).
        same = curl(url, "-H", "Authorization: Basic YWRtaW46cGFzc3dvcmQ=")
        assert same.status == 200
        ex.wait_count(r"Auth Success: admin verified", 2)
        assert hits(target) == 2
