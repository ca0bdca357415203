"""Config files that try to explode: YAML aliases are refused, in one line, through the real CLI."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

from test_cli import CMD, clean_env

from proxycore.config import ConfigError, parse_config_text


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


BILLION_LAUGHS = """\
# the classic: nine levels of nine aliases each, 9**9 strings once expanded
mitm:
  skipHosts: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
capture:
  alwaysHosts: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  neverHosts: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
filter:
  includeHosts: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  excludeHosts: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  includePaths: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  excludePaths: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  includeMethods: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  excludeMethods: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def _limit_memory() -> None:
    # should the refusal ever regress, the expansion must not take the shared machine down with it
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_yaml_alias_bomb_is_refused_in_one_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    for args in (["config", "show"], ["--no-ui", "-p", "0", "--no-mitm"]):
        r = subprocess.run([*CMD, "--config", str(bomb), *args], capture_output=True, text=True,
                           env=clean_env(tmp_path), cwd=tmp_path, timeout=60, preexec_fn=_limit_memory)
        line = _one_line_error(r)
        assert f"{bomb}:5: YAML aliases (*a) are not allowed in a config file" in line, line


def test_any_alias_is_refused() -> None:
    # even a harmless one: a config file has no use for them (old code loaded this silently)
    text = 'mitm:\n  skipHosts: &hosts [a.example]\ncapture:\n  neverHosts: *hosts\n'
    try:
        parse_config_text(text, "c.yaml")
    except ConfigError as e:
        assert str(e) == ("c.yaml:4: YAML aliases (*hosts) are not allowed in a config file; write the value "
                          "out in full")
    else:
        raise AssertionError("an alias was accepted")
    try:
        parse_config_text("server:\n  port: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    except ConfigError as e:
        assert "deep.yaml" in str(e)
    else:
        raise AssertionError("a 5000-deep list was accepted as a port")
