"""Config loading: precedence, errors that name the key, and the `config init/show` commands.

The command tests run the real `omniproxy-tui` console script (pip install -e .) with
OMNIPROXY_HOME pointing at a temporary directory.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from omniproxy_tui.cli import FLAG_KEYS
from omniproxy_tui.cli import cli as cli_group
from proxycore.config import (
    BY_FIELD,
    KEYS,
    ConfigError,
    default_config_yaml,
    load_options,
    options_to_yaml,
    parse_config_text,
    parse_size,
    read_env,
    unknown_env_vars,
)
from proxycore.options import Options

EXE = shutil.which("omniproxy-tui")


def cli(home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run the installed console script; falls back to `python -m omniproxy_tui.cli`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMNIPROXY_")}
    base["OMNIPROXY_HOME"] = str(home)
    base.update(env or {})
    cmd = [EXE, *args] if EXE else [sys.executable, "-m", "omniproxy_tui.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=base, cwd=cwd or home, timeout=60)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNIPROXY_HOME", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------ the key table


def test_every_option_field_has_exactly_one_key() -> None:
    fields = [f.name for f in dataclasses.fields(Options)]
    assert sorted(k.field for k in KEYS) == sorted(fields)
    assert len({k.path for k in KEYS}) == len(KEYS)


def test_defaults_without_any_file(home: Path) -> None:
    assert load_options(None, {}, {}) == Options()


# ------------------------------------------------------------------ precedence


def test_precedence_file_env_flags(home: Path) -> None:
    cfg = home / "my.yaml"
    cfg.write_text(
        "server: {port: 7000, host: 0.0.0.0}\n"
        "mitm: {enabled: false, skipHosts: [file.com]}\n"
        "capture: {sampleRate: 0.5, maxBodySize: 512k}\n"
    )
    env = {"OMNIPROXY_PORT": "9000", "OMNIPROXY_SKIP_HOSTS": "a.com, b.com"}
    opts = load_options(str(cfg), env, {"port": 9100})
    assert opts.port == 9100  # flag beats env beats file
    assert opts.skip_hosts == ["a.com", "b.com"]  # env beats file (lists replace, not merge)
    assert opts.host == "0.0.0.0"  # file beats default
    assert opts.mitm is False
    assert opts.sample_rate == 0.5
    assert opts.max_body_size == 512 * 1024
    assert opts.batch_size == Options().batch_size  # untouched keys keep their default


def test_default_file_is_read_only_when_present(home: Path) -> None:
    assert load_options(None, {}, {}).port == 8080
    (home / "config.yaml").write_text("server:\n  port: 8181\n")
    assert load_options(None, {}, {}).port == 8181


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("yes", True), ("On", True), ("true", True), ("0", False), ("no", False), ("off", False)],
)
def test_env_booleans(text: str, expected: bool) -> None:
    assert read_env({"OMNIPROXY_MITM": text}) == {"mitm": expected}


def test_env_types() -> None:
    got = read_env({
        "OMNIPROXY_MAX_BODY_SIZE": "1MiB", "OMNIPROXY_SAMPLE_RATE": "0.25", "OMNIPROXY_OUTPUT": "",
        "OMNIPROXY_FORMAT": "HAR", "OMNIPROXY_UPSTREAM": "http://u:p@proxy.local:3128",
        "OMNIPROXY_HOME": "/elsewhere",  # not an option: ignored
    })
    assert got == {"max_body_size": 1048576, "sample_rate": 0.25, "output": None, "format": "har",
                   "upstream": "http://u:p@proxy.local:3128"}


def test_env_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^OMNIPROXY_PORT: expected an integer 0\.\.65535, got '99999'$"):
        read_env({"OMNIPROXY_PORT": "99999"})
    with pytest.raises(ConfigError, match="OMNIPROXY_MITM"):
        read_env({"OMNIPROXY_MITM": "maybe"})


def test_unknown_env_var_is_reported_with_a_suggestion() -> None:
    assert unknown_env_vars({"OMNIPROXY_PROT": "1", "OMNIPROXY_HOME": "/x", "PATH": "/bin"}) == [
        "OMNIPROXY_PROT (did you mean OMNIPROXY_PORT?)"
    ]


def test_flag_override_is_validated_and_named() -> None:
    with pytest.raises(ConfigError, match=r"^--sample-rate: expected a number 0\.\.1, got 1\.5$"):
        load_options(None, {}, {"sample_rate": 1.5})
    with pytest.raises(ConfigError, match="--skip-host"):
        load_options(None, {}, {"skip_hosts": 3})


# ------------------------------------------------------------------ file errors


def test_unknown_key_names_it_and_suggests() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config_text("capture:\n  maxBodySise: 10\n", "config.yaml")
    assert str(e.value) == "config.yaml: unknown key capture.maxBodySise (did you mean capture.maxBodySize?)"
    # snake_case and a key in the wrong section are recognised too
    with pytest.raises(ConfigError, match=r"did you mean capture\.maxBodySize\?"):
        parse_config_text("capture:\n  max_body_size: 10\n")
    with pytest.raises(ConfigError, match=r"unknown key filter\.skipHosts \(did you mean mitm\.skipHosts\?\)"):
        parse_config_text("filter:\n  skipHosts: [a]\n")
    with pytest.raises(ConfigError, match=r"unknown section serevr \(did you mean server\?\)"):
        parse_config_text("serevr:\n  port: 1\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("capture:\n  maxBodySize: abc\n",
         "config.yaml: capture.maxBodySize: expected a non-negative integer (bytes; 512k, 1MiB, 10MB ok), got 'abc'"),
        ("server:\n  port: 70000\n", "config.yaml: server.port: expected an integer 0..65535, got 70000"),
        ("server:\n  port: true\n", "config.yaml: server.port: expected an integer 0..65535, got True"),
        ("capture:\n  format: xml\n", "config.yaml: capture.format: expected one of ndjson, json, har, ir, got 'xml'"),
        ("capture:\n  sampleRate: -0.1\n", "config.yaml: capture.sampleRate: expected a number 0..1, got -0.1"),
        ("capture:\n  queueSize: 0\n", "config.yaml: capture.queueSize: expected a positive integer, got 0"),
        ("mitm:\n  enabled: maybe\n", "config.yaml: mitm.enabled: expected true or false, got 'maybe'"),
        ("upstream: socks5://h:1\n", "config.yaml: upstream: expected http://[user:pass@]host:port, got 'socks5://h:1'"),
        ("upstream: http://proxy.local\n",
         "config.yaml: upstream: expected http://[user:pass@]host:port, got 'http://proxy.local'"),
        ("capture:\n  filterHeaders: ['bad header']\n",
         "config.yaml: capture.filterHeaders: 'bad header' is not a valid header name"),
        ("server: 8080\n", "config.yaml: server: expected a mapping of keys, got 8080"),
        ("- a\n- b\n", "config.yaml: expected a mapping of sections (server:, mitm:, capture: ...)"),
    ],
)
def test_bad_values_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config_text(text, "config.yaml")
    assert str(e.value) == message


def test_yaml_syntax_error_is_one_line_with_the_line_number() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config_text("server:\n  port: 1\n  host: [oops\n", "config.yaml")
    msg = str(e.value)
    assert msg.startswith("config.yaml:4: YAML syntax error:") or msg.startswith("config.yaml:3: YAML syntax error:")
    assert "\n" not in msg


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"config\.yaml:3: .*duplicate key 'port'"):
        parse_config_text("server:\n  port: 1\n  port: 2\n", "config.yaml")


def test_original_omniproxy_reverse_section_is_explained() -> None:
    with pytest.raises(ConfigError, match="reverse-proxy mode .* not supported"):
        parse_config_text("reverse:\n  httpPort: 80\n")


def test_empty_values_mean_unset() -> None:
    # the original's `config init` wrote upstream: "" and empty paths
    got = parse_config_text('upstream: ""\nmitm:\n  certPath: ""\ncapture:\n  output:\n  skipBinary: false\n')
    assert got == {"upstream": None, "ca_cert": None, "output": None, "skip_binary": False}
    assert parse_config_text("") == {}
    assert parse_config_text("server:\n") == {}


def test_lists_accept_a_comma_string() -> None:
    assert parse_config_text("filter:\n  includeMethods: GET, post\n") == {"include_methods": ["GET", "post"]}


def test_db_url_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"^config\.yaml: capture\.db: "):
        parse_config_text("capture:\n  db: mysql://nope\n", "config.yaml")
    with pytest.raises(ConfigError, match=r"^--db: "):
        load_options(None, {}, {"db": "mysql://nope"})


@pytest.mark.parametrize(
    ("text", "n"),
    [("1048576", 1048576), ("1MiB", 1048576), ("512k", 524288), ("10MB", 10_000_000), ("1.5m", 1572864),
     ("2 KiB", 2048), ("0", 0)],
)
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "12q", "1i", ""])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


# ------------------------------------------------------------------ writing YAML


def test_default_file_loads_to_the_defaults_and_documents_every_key() -> None:
    text = default_config_yaml()
    assert parse_config_text(text) == {f.name: getattr(Options(), f.name) for f in dataclasses.fields(Options)}
    for key in KEYS:
        assert f"{key.name}:" in text, key.path
    assert "adds to that list instead of replacing it" in text  # filterHeaders semantics
    assert "# e.g. skipHosts:" in text
    # the commented examples are valid when uncommented
    for line in text.splitlines():
        if line.strip().startswith("# e.g. "):
            example = line.strip().removeprefix("# e.g. ")
            name = example.split(":", 1)[0]
            key = next(k for k in KEYS if k.name == name)
            doc = f"{key.section}:\n  {example}\n" if key.section else example + "\n"
            assert parse_config_text(doc), example


def test_options_to_yaml_round_trips() -> None:
    opts = Options(port=9000, mitm=False, skip_hosts=["*.a.com", "b.com"], format="har", output="out.har",
                   max_body_size=10, sample_rate=0.25, upstream="http://u:p@h:1", filter_headers=["x-k"],
                   include_methods=["GET"], max_flows=7, flush_interval=0.5)
    text = options_to_yaml(opts)
    assert yaml.safe_load(text)["server"]["port"] == 9000
    assert Options(**parse_config_text(text)) == opts


def test_flag_names_are_the_cli_flags() -> None:
    assert BY_FIELD["skip_hosts"].flag_name == "--skip-host"
    assert BY_FIELD["max_body_size"].flag_name == "--max-body-size"
    assert BY_FIELD["redact"].flag_name == "--no-redact"


# ------------------------------------------------------------------ the real command


def test_cli_precedence_file_env_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  port: 7000\n  host: 0.0.0.0\ncapture:\n  sampleRate: 0.5\n")
    r = cli(tmp_path, "--config", str(cfg), "config", "show")
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert {k: shown["server"][k] for k in ("host", "port", "verbose")} == {"host": "0.0.0.0", "port": 7000,
                                                                           "verbose": 0}
    r = cli(tmp_path, "--config", str(cfg), "config", "show", env={"OMNIPROXY_PORT": "9000"})
    assert yaml.safe_load(r.stdout)["server"]["port"] == 9000
    r = cli(tmp_path, "--config", str(cfg), "-p", "9100", "--sample-rate", "1", "config", "show",
            env={"OMNIPROXY_PORT": "9000"})
    shown = yaml.safe_load(r.stdout)
    assert shown["server"]["port"] == 9100
    assert shown["capture"]["sampleRate"] == 1.0
    assert shown["server"]["host"] == "0.0.0.0"  # a flag left at its default does not clobber the file


def test_cli_multiple_flags_and_sizes(tmp_path: Path) -> None:
    r = cli(tmp_path, "--skip-host", "a.com,b.com", "--skip-host", "c.com", "--max-body-size", "10MB",
            "--no-mitm", "--exclude-method", "OPTIONS", "config", "show")
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["mitm"]["skipHosts"] == ["a.com", "b.com", "c.com"]
    assert shown["mitm"]["enabled"] is False
    assert shown["capture"]["maxBodySize"] == 10_000_000
    assert shown["filter"]["excludeMethods"] == ["OPTIONS"]


def test_cli_config_errors_are_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"  # the default path: read without --config
    cfg.write_text("capture:\n  maxBodySize: abc\n")
    r = cli(tmp_path, "config", "show")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip() == (
        f"omniproxy-tui: error: {cfg}: capture.maxBodySize: expected a non-negative integer "
        "(bytes; 512k, 1MiB, 10MB ok), got 'abc'")
    cfg.write_text("capture:\n  maxBodySise: 1\n")
    r = cli(tmp_path, "--no-ui")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "did you mean capture.maxBodySize?" in r.stderr
    cfg.write_text("server:\n  port: [1\n")
    r = cli(tmp_path, "config", "show")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"omniproxy-tui: error: {cfg}:3: YAML syntax error")
    r = cli(tmp_path, "--config", str(tmp_path / "missing.yaml"), "config", "show")
    assert r.returncode == 2
    assert r.stderr.strip() == f"omniproxy-tui: error: {tmp_path / 'missing.yaml'}: config file not found"
    cfg.unlink()
    r = cli(tmp_path, "config", "show", env={"OMNIPROXY_MITM": "perhaps"})
    assert r.returncode == 2
    assert r.stderr.strip() == "omniproxy-tui: error: OMNIPROXY_MITM: expected true or false, got 'perhaps'"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_cli_unreadable_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: {}\n")
    cfg.chmod(0)
    r = cli(tmp_path, "--config", str(cfg), "config", "show")
    assert r.returncode == 2 and "permission denied" in r.stderr


def test_cli_config_directory_is_one_line(tmp_path: Path) -> None:
    r = cli(tmp_path, "--config", str(tmp_path), "config", "show")
    assert r.returncode == 2
    assert r.stderr.strip() == f"omniproxy-tui: error: {tmp_path}: is a directory, not a config file"


def test_cli_config_init_then_show_round_trip(tmp_path: Path) -> None:
    r = cli(tmp_path, "config", "init")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == default_config_yaml()
    # refuses to overwrite without --force, and keeps the user's edits
    path.write_text(path.read_text().replace("port: 8080", "port: 8081"))
    r = cli(tmp_path, "config", "init")
    assert r.returncode == 2
    assert r.stderr.strip() == f"omniproxy-tui: error: {path} already exists (use --force to overwrite it)"
    assert "port: 8081" in path.read_text()
    # show reads the default file
    r = cli(tmp_path, "config", "show")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["server"]["port"] == 8081
    assert f"config file: {path}" in r.stdout
    # what show prints is itself a valid config giving the same options
    shown = tmp_path / "shown.yaml"
    shown.write_text(r.stdout)
    r2 = cli(tmp_path, "config", "show", "--config", str(shown))
    assert yaml.safe_load(r2.stdout) == yaml.safe_load(r.stdout)
    r = cli(tmp_path, "config", "init", "--force")
    assert r.returncode == 0 and "port: 8080" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_config_init_custom_path_and_stdout(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "dir" / "omni.yaml"
    r = cli(tmp_path, "config", "init", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == default_config_yaml()
    r = cli(tmp_path, "config", "init", "-o", "-")
    assert r.returncode == 0 and r.stdout == default_config_yaml()


def test_cli_unknown_env_var_warns(tmp_path: Path) -> None:
    r = cli(tmp_path, "config", "show", env={"OMNIPROXY_PROT": "9"})
    assert r.returncode == 0
    assert "warning: ignoring unknown environment variable OMNIPROXY_PROT (did you mean OMNIPROXY_PORT?)" in r.stderr


# ------------------------------------------------------------------ one declaration per option


def test_flags_are_derived_from_the_declarations() -> None:
    params = {p.name: p for p in cli_group.params}
    for key in FLAG_KEYS:
        param = params.pop(key.field)
        names = [*param.opts, *param.secondary_opts]
        assert key.flag_name in names and (key.short is None or key.short in names), key.field
        assert param.help == key.cli_help
    # the rest are not options: how to run this once (like mitmproxy's -r and -n, per invocation)
    assert set(params) == {"config", "no_ui", "version", "read", "no_server"}
    assert {k.field for k in KEYS if not k.flag} == {"include_headers", "include_body", "flush_interval", "alpn",
                                                     "rules"}  # rules: the YAML list; its flags are --block ... --rules


def test_env_names_and_paths_come_from_the_field_names() -> None:
    assert BY_FIELD["connect_timeout"].env == "OMNIPROXY_CONNECT_TIMEOUT"
    assert BY_FIELD["connect_timeout"].path == "server.connectTimeout"
    assert BY_FIELD["scripts"].env == "OMNIPROXY_SCRIPTS" and BY_FIELD["scripts"].path == "server.scripts"
    assert BY_FIELD["alpn"].path == "mitm.alpn"
    assert BY_FIELD["mitm"].flag_name == "--no-mitm"  # an on/off pair names the side that changes something


def test_new_option_defaults() -> None:
    o = Options()
    assert (o.connect_timeout, o.client_head_timeout, o.keepalive_timeout, o.response_timeout,
            o.body_idle_timeout) == (15.0, 30.0, 60.0, 120.0, 60.0)
    assert (o.max_head_size, o.max_pipelined, o.body_buffer_limit) == (65536, 16, 32 * 1024 * 1024)
    assert o.scripts == [] and o.verbose == 0 and o.alpn == ["h2", "http/1.1"] and o.http2 is True
    assert Options().alpn is not o.alpn  # a fresh list per instance


def test_new_options_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b,c.py").write_text("")
    got = parse_config_text("server:\n  connectTimeout: 2\n  maxHeadSize: 16k\n  maxPipelined: 4\n"
                            "  bodyBufferLimit: 1MiB\n  verbose: true\n  scripts: [a.py, 'b,c.py']\n"
                            "mitm:\n  alpn: [http/1.1]\n")
    assert got == {"connect_timeout": 2.0, "max_head_size": 16384, "max_pipelined": 4,
                   "body_buffer_limit": 1048576, "verbose": 1, "scripts": ["a.py", "b,c.py"],
                   "alpn": ["http/1.1"]}
    assert parse_config_text("server:\n  verbose: 2\n") == {"verbose": 2}
    assert parse_config_text("server:\n  verbose: false\n") == {"verbose": 0}
    assert read_env({"OMNIPROXY_SCRIPTS": "a.py, a.py", "OMNIPROXY_VERBOSE": "yes",
                     "OMNIPROXY_RESPONSE_TIMEOUT": "0.5", "OMNIPROXY_MAX_HEAD_SIZE": "1k"}) == {
        "scripts": ["a.py", "a.py"], "verbose": 1, "response_timeout": 0.5, "max_head_size": 1024}
    assert load_options(None, {}, {"verbose": 3, "scripts": ["b,c.py"]}).scripts == ["b,c.py"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  connectTimeout: 0\n", "config.yaml: server.connectTimeout: expected a positive number, got 0"),
        ("server:\n  keepaliveTimeout: -1\n",
         "config.yaml: server.keepaliveTimeout: expected a positive number, got -1"),
        ("server:\n  responseTimeout: .inf\n",
         "config.yaml: server.responseTimeout: expected a positive number, got inf"),
        ("server:\n  bodyIdleTimeout: soon\n",
         "config.yaml: server.bodyIdleTimeout: expected a positive number, got 'soon'"),
        ("server:\n  maxHeadSize: 0\n",
         "config.yaml: server.maxHeadSize: expected a positive integer (bytes; 512k, 1MiB, 10MB ok), got 0"),
        ("server:\n  bodyBufferLimit: lots\n",
         "config.yaml: server.bodyBufferLimit: expected a positive integer (bytes; 512k, 1MiB, 10MB ok), "
         "got 'lots'"),
        ("server:\n  maxPipelined: 0\n", "config.yaml: server.maxPipelined: expected a positive integer, got 0"),
        ("server:\n  verbose: -1\n",
         "config.yaml: server.verbose: expected a non-negative integer, or true/false, got -1"),
        ("server:\n  verbose: lots\n",
         "config.yaml: server.verbose: expected a non-negative integer, or true/false, got 'lots'"),
        ("server:\n  scripts: [/nonexistent/addon.py]\n",
         "config.yaml: server.scripts: '/nonexistent/addon.py': no such file"),
        ("mitm:\n  alpn: [h3, http/1.1]\n",
         "config.yaml: mitm.alpn: 'h3' is not supported (allowed: h2, http/1.1), got ['h3', 'http/1.1']"),
    ],
)
def test_new_options_bad_values_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config_text(text, "config.yaml")
    assert str(e.value) == message


def test_new_options_bad_env_and_flag_values() -> None:
    with pytest.raises(ConfigError, match=r"^OMNIPROXY_CLIENT_HEAD_TIMEOUT: expected a positive number, got '0'$"):
        read_env({"OMNIPROXY_CLIENT_HEAD_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match=r"^OMNIPROXY_ALPN: 'spdy/3' is not supported \(allowed: h2, http/1\.1\)"):
        read_env({"OMNIPROXY_ALPN": "spdy/3"})
    with pytest.raises(ConfigError, match=r"^--connect-timeout: expected a positive number, got 0\.0$"):
        load_options(None, {}, {"connect_timeout": 0.0})
    with pytest.raises(ConfigError, match=r"^--script: 'nope\.py': no such file$"):
        load_options(None, {}, {"scripts": ["nope.py"]})


def test_options_to_yaml_masks_secrets_on_request() -> None:
    opts = Options(upstream="http://bob:s3cret@proxy.corp:3128")
    assert "s3cret" in options_to_yaml(opts)
    masked = options_to_yaml(opts, mask_secrets=True)
    assert "s3cret" not in masked and "upstream: http://bob:***@proxy.corp:3128" in masked
    assert "upstream: http://proxy.corp:3128" in options_to_yaml(Options(upstream="http://proxy.corp:3128"),
                                                                mask_secrets=True)


def test_cli_new_flags(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b,c.py").write_text("")
    r = cli(tmp_path, "-vv", "-s", "a.py", "--script", "b,c.py", "--connect-timeout", "2.5",
            "--max-head-size", "16k", "--body-buffer-limit", "1MiB", "--max-pipelined", "4", "config", "show")
    assert r.returncode == 0, r.stderr
    server = yaml.safe_load(r.stdout)["server"]
    assert server["verbose"] == 2 and server["scripts"] == ["a.py", "b,c.py"]
    assert (server["connectTimeout"], server["maxHeadSize"], server["bodyBufferLimit"], server["maxPipelined"]) == (
        2.5, 16384, 1048576, 4)
    for args, message in [
        (["--response-timeout", "0"], "omniproxy-tui: error: --response-timeout: expected a positive number, got 0.0"),
        (["--max-head-size", "0"], "omniproxy-tui: error: --max-head-size: expected a positive integer "
                                   "(bytes; 512k, 1MiB, 10MB ok), got 0"),
        (["-s", "missing.py"], "omniproxy-tui: error: --script: 'missing.py': no such file"),
    ]:
        r = cli(tmp_path, *args, "config", "show")
        assert r.returncode == 2 and r.stderr.strip() == message, (args, r.stderr)


def test_cli_config_show_masks_the_upstream_password(tmp_path: Path) -> None:
    url = "http://bob:s3cret@proxy.corp:3128"
    r = cli(tmp_path, "--upstream", url, "config", "show")
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout and yaml.safe_load(r.stdout)["upstream"] == "http://bob:***@proxy.corp:3128"
    r = cli(tmp_path, "config", "show", "--show-secrets", env={"OMNIPROXY_UPSTREAM": url})
    assert r.returncode == 0 and yaml.safe_load(r.stdout)["upstream"] == url
