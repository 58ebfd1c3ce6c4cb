"""ServerConf parsing and validation, and the command-line options."""

import logging

import pytest

from propylon.server import ConfigError, Opt, ServerConf


def test_defaults_match_pingora():
    c = ServerConf()
    assert c.version == 1 and c.daemon is False and c.error_log is None
    assert c.pid_file == "/tmp/propylon.pid"
    assert c.upgrade_sock == "/tmp/propylon_upgrade.sock"
    assert c.threads == 1 and c.work_stealing is True and c.listener_tasks_per_fd == 1
    assert c.grace_period_seconds is None and c.grace_period == 300
    assert c.graceful_shutdown_timeout_seconds is None and c.graceful_shutdown_timeout == 5
    assert c.upstream_keepalive_pool_size == 128 and c.max_retries == 16
    assert c.client_bind_to_ipv4 == [] and c.client_bind_to_ipv6 == []
    assert c.upgrade_retries == 5


def test_load_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("---\nversion: 1\nthreads: 3\npid_file: /tmp/x.pid\nerror_log: /tmp/x.log\n"
                 "grace_period_seconds: 7\nclient_bind_to_ipv4: ['127.0.0.2']\n")
    c = ServerConf.load(str(p))
    assert (c.threads, c.pid_file, c.error_log, c.grace_period) == (3, "/tmp/x.pid", "/tmp/x.log", 7)
    assert c.client_bind_to_ipv4 == ["127.0.0.2"]
    assert c.source == str(p)


def test_empty_document_gives_defaults():
    assert ServerConf.from_yaml("") == ServerConf()
    assert ServerConf.from_yaml("---\n") == ServerConf()


def test_unknown_key_names_file_and_key_with_suggestion(tmp_path):
    p = tmp_path / "typo.yaml"
    p.write_text("threds: 2\n")
    with pytest.raises(ConfigError) as e:
        ServerConf.load(str(p))
    msg = str(e.value)
    assert msg == f"{p}: field 'threds': unknown key (did you mean 'threads'?)"
    assert e.value.field == "threds" and e.value.path == str(p)
    assert "\n" not in msg


@pytest.mark.parametrize("text, field, fragment", [
    ("threads: two", "threads", "expected an integer, got a string ('two')"),
    ("threads: true", "threads", "expected an integer, got a boolean"),
    ("daemon: 'yes'", "daemon", "expected true or false"),
    ("pid_file: null", "pid_file", "got null"),
    ("pid_file: 12", "pid_file", "expected a string"),
    ("client_bind_to_ipv4: 127.0.0.1", "client_bind_to_ipv4", "expected a list of strings"),
    ("client_bind_to_ipv4: [1, 2]", "client_bind_to_ipv4", "expected a list of strings"),
    ("grace_period_seconds: 1.5", "grace_period_seconds", "expected an integer, got a number"),
])
def test_wrong_types(text, field, fragment):
    with pytest.raises(ConfigError) as e:
        ServerConf.from_yaml(text, path="f.yaml")
    assert e.value.field == field
    assert str(e.value).startswith(f"f.yaml: field '{field}': ")
    assert fragment in str(e.value)


def test_optional_fields_accept_null():
    c = ServerConf.from_yaml("error_log: ~\ngrace_period_seconds: null\n")
    assert c.error_log is None and c.grace_period == 300


@pytest.mark.parametrize("text, field", [
    ("threads: 0", "threads"),
    ("grace_period_seconds: -1", "grace_period_seconds"),
    ("max_retries: -2", "max_retries"),
    ("version: 7", "version"),
    ("upgrade_sock: /tmp/" + "x" * 120, "upgrade_sock"),
    ("user: no-such-user-here", "user"),
    ("pid_file: ''", "pid_file"),
])
def test_validation_errors(text, field):
    with pytest.raises(ConfigError) as e:
        ServerConf.from_yaml(text, path="v.yaml")
    assert e.value.field == field
    assert str(e.value).startswith(f"v.yaml: field '{field}': ")


def test_validate_catches_changes_made_in_code():
    c = ServerConf()
    c.threads = -1
    with pytest.raises(ConfigError, match="threads"):
        c.validate()
    c.threads = "2"
    with pytest.raises(ConfigError, match="expected an integer"):
        c.validate()


def test_bad_yaml_reports_position():
    with pytest.raises(ConfigError) as e:
        ServerConf.from_yaml("threads: 2\n  bad: [\n", path="b.yaml")
    assert str(e.value).startswith("b.yaml: invalid YAML at line ")
    assert "\n" not in str(e.value)


def test_top_level_must_be_mapping():
    with pytest.raises(ConfigError, match="expected a mapping of settings at the top level, got a list"):
        ServerConf.from_yaml("- threads\n", path="l.yaml")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as e:
        ServerConf.load(str(missing))
    assert str(e.value) == f"{missing}: cannot read configuration file: No such file or directory"


def test_ignored_fields_warn(caplog):
    with caplog.at_level(logging.WARNING):
        c = ServerConf.from_yaml("listener_tasks_per_fd: 4\nupstream_connect_offload_threadpools: 2\n",
                                 path="i.yaml")
    assert c.listener_tasks_per_fd == 4
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'listener_tasks_per_fd' has no effect" in warned
    assert "'upstream_connect_offload_threadpools' has no effect" in warned


def test_dump_lists_every_field():
    text = ServerConf.from_yaml("threads: 2\npid_file: /tmp/a.pid\n").dump()
    lines = text.splitlines()
    assert "threads: 2" in lines and "pid_file: /tmp/a.pid" in lines
    assert "error_log: ~" in lines and "work_stealing: true" in lines
    assert len(lines) == len(ServerConf().to_dict())


def test_opt_flags():
    o = Opt.parse_args(["-c", "x.yaml", "-d", "-u", "-t"])
    assert (o.conf, o.daemon, o.upgrade, o.test) == ("x.yaml", True, True, True)
    o = Opt.parse_args(["--conf=y.yaml", "--daemon"])
    assert (o.conf, o.daemon, o.upgrade, o.test) == ("y.yaml", True, False, False)
    assert Opt.parse_args([]) == Opt()
