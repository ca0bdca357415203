"""Capture scope (include/exclude), sampling and skip-host matching."""

from __future__ import annotations

import pytest

from proxycore.addons.scope import (
    Sampler,
    Scope,
    compile_patterns,
    skip_host_matcher,
    split_list,
    strip_port,
    validate_patterns,
    validate_sample_rate,
)
from proxycore.options import Options

# --- wildcards and lists ---------------------------------------------------------------------


def test_split_list_handles_repeats_and_commas() -> None:
    assert split_list(["a.com,b.com", " c.com ", "d.com, ,"]) == ["a.com", "b.com", "c.com", "d.com"]
    assert split_list("GET,POST") == ["GET", "POST"]
    assert split_list(None) == [] and split_list([]) == []


def test_validate_patterns_rejects_empty_items() -> None:
    assert validate_patterns("include_hosts", ["a.com,b.com", "c.com"]) == ["a.com", "b.com", "c.com"]
    with pytest.raises(ValueError, match=r"^include_paths: empty pattern"):
        validate_patterns("include_paths", ["/api,,/v2"])
    with pytest.raises(ValueError, match=r"^exclude_hosts: empty pattern"):
        validate_patterns("exclude_hosts", ["  "])


@pytest.mark.parametrize("value", [0, 0.5, 1, "0.25", 1.0])
def test_sample_rate_in_range(value: object) -> None:
    assert validate_sample_rate(value) == float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-0.1, 1.5, "abc", None, float("nan")])
def test_sample_rate_out_of_range(value: object) -> None:
    with pytest.raises(ValueError, match=r"^sample_rate: "):
        validate_sample_rate(value)


@pytest.mark.parametrize(
    "host, bare",
    [("example.com", "example.com"), ("example.com:8443", "example.com"), ("[::1]:8080", "::1"),
     ("[::1]", "::1"), ("::1", "::1"), ("10.0.0.1:80", "10.0.0.1")],
)
def test_strip_port(host: str, bare: str) -> None:
    assert strip_port(host) == bare


def test_wildcards_are_anchored_and_escape_metacharacters() -> None:
    rx = compile_patterns(["api.example.com"], ignore_case=True)
    assert rx is not None
    assert rx.fullmatch("api.example.com")
    assert not rx.fullmatch("apiXexample.com")  # "." is literal
    assert not rx.fullmatch("api.example.com.evil.net")  # anchored at the end
    assert not rx.fullmatch("xapi.example.com")  # and at the start
    rx = compile_patterns(["/a+b(c)[d]"], ignore_case=False)
    assert rx is not None and rx.fullmatch("/a+b(c)[d]") and not rx.fullmatch("/aab(c)[d]")
    assert compile_patterns([], ignore_case=True) is None


def test_star_and_question_mark() -> None:
    rx = compile_patterns(["*.js", "/api/v?/*"], ignore_case=False)
    assert rx is not None
    assert rx.fullmatch("/app.js")
    assert rx.fullmatch("/static/deep/dir/app.js")  # * crosses "/"
    assert rx.fullmatch("/api/v1/users/7")
    assert not rx.fullmatch("/api/v10/users")  # ? is exactly one character
    assert not rx.fullmatch("/app.jsx")


# --- Scope -----------------------------------------------------------------------------------


def test_no_filters_means_no_scope_object() -> None:
    assert Scope.from_options(Options()) is None


def test_from_options_validates() -> None:
    with pytest.raises(ValueError, match=r"^include_methods: empty pattern"):
        Scope.from_options(Options(include_methods=["GET,"]))


def test_include_host_wildcard_is_not_apex() -> None:
    s = Scope.from_options(Options(include_hosts=["*.example.com"]))
    assert s is not None
    assert s.matches("api.example.com", "/", "GET")
    assert s.matches("a.b.example.com", "/", "GET")
    assert not s.matches("example.com", "/", "GET")
    assert not s.matches("example.org", "/", "GET")


def test_hosts_case_insensitive_and_without_port() -> None:
    s = Scope.from_options(Options(include_hosts=["API.Example.com"]))
    assert s is not None
    assert s.matches("api.example.COM:8443", "/x", "GET")
    assert s.matches("api.example.com", "/x", "GET")
    # a pattern written with a port still means the host
    s = Scope.from_options(Options(include_hosts=["localhost:8080"]))
    assert s is not None and s.matches("localhost:9999", "/", "GET")


def test_ipv6_hosts() -> None:
    s = Scope.from_options(Options(include_hosts=["::1"]))
    assert s is not None
    assert s.matches("[::1]:8080", "/", "GET") and s.matches("::1", "/", "GET")


def test_include_hosts_comma_separated_and_repeated() -> None:
    s = Scope.from_options(Options(include_hosts=["a.com,b.com", "c.com"]))
    assert s is not None
    assert all(s.matches(h, "/", "GET") for h in ("a.com", "b.com", "c.com"))
    assert not s.matches("d.com", "/", "GET")


def test_exclude_host() -> None:
    s = Scope.from_options(Options(exclude_hosts=["*.tracker.net", "ads.example.com"]))
    assert s is not None
    assert not s.matches("x.tracker.net", "/", "GET")
    assert not s.matches("ADS.example.com:443", "/", "GET")
    assert s.matches("example.com", "/", "GET")


def test_paths_case_sensitive_and_query_ignored() -> None:
    s = Scope.from_options(Options(include_paths=["/api/*"], exclude_paths=["*.js", "*.css"]))
    assert s is not None
    assert s.matches("h", "/api/users", "GET")
    assert s.matches("h", "/api/users?limit=10", "GET")
    assert not s.matches("h", "/API/users", "GET")  # paths are case-sensitive
    assert not s.matches("h", "/other", "GET")
    assert not s.matches("h", "/api/app.js", "GET")
    assert not s.matches("h", "/api/app.js?v=3", "GET")


def test_methods_case_insensitive() -> None:
    s = Scope.from_options(Options(include_methods=["get", "POST"]))
    assert s is not None
    assert s.matches("h", "/", "GET") and s.matches("h", "/", "post") and s.matches("h", "/", "Get")
    assert not s.matches("h", "/", "DELETE")
    s = Scope.from_options(Options(exclude_methods=["options,HEAD"]))
    assert s is not None
    assert not s.matches("h", "/", "OPTIONS") and not s.matches("h", "/", "head")
    assert s.matches("h", "/", "GET")


def test_every_dimension_must_pass() -> None:
    s = Scope.from_options(Options(
        include_hosts=["*.example.com"], include_paths=["/api/*"], include_methods=["GET"],
        exclude_hosts=["internal.example.com"], exclude_paths=["/api/health"], exclude_methods=["HEAD"],
    ))
    assert s is not None
    assert s.matches("www.example.com", "/api/x", "GET")
    assert not s.matches("www.example.org", "/api/x", "GET")  # host include fails
    assert not s.matches("www.example.com", "/static/x", "GET")  # path include fails
    assert not s.matches("www.example.com", "/api/x", "POST")  # method include fails
    assert not s.matches("internal.example.com", "/api/x", "GET")  # host exclude
    assert not s.matches("www.example.com", "/api/health", "GET")  # path exclude
    s2 = Scope(include_methods=["*"], exclude_methods=["HEAD"])
    assert not s2.matches("h", "/", "HEAD") and s2.matches("h", "/", "PUT")


def test_question_mark_in_host_pattern() -> None:
    s = Scope(include_hosts=["test?.example.com"])
    assert s.matches("test1.example.com", "/", "GET")
    assert not s.matches("test.example.com", "/", "GET")
    assert not s.matches("test12.example.com", "/", "GET")


# --- Sampler ---------------------------------------------------------------------------------


def test_no_sampler_when_everything_is_kept() -> None:
    assert Sampler.from_options(Options()) is None
    assert Sampler.from_options(Options(sample_rate=1.0)) is None
    assert Sampler.from_options(Options(never_hosts=["x.com"])) is not None
    assert Sampler.from_options(Options(sample_rate=0.5)) is not None


def test_sampler_validates_rate() -> None:
    with pytest.raises(ValueError, match=r"^sample_rate: "):
        Sampler.from_options(Options(sample_rate=2.0))


@pytest.mark.parametrize("rate, n, kept", [(0.1, 1000, 100), (0.25, 1000, 250), (0.5, 10, 5),
                                           (0.29, 100, 29), (1 / 3, 300, 100), (0.0, 500, 0)])
def test_exact_fractions(rate: float, n: int, kept: int) -> None:
    s = Sampler(rate)
    decisions = [s.keep("example.com") for _ in range(n)]
    assert sum(decisions) == kept
    assert (s.kept, s.dropped) == (kept, n - kept)


def test_one_in_ten_pattern() -> None:
    s = Sampler(0.1)
    decisions = [s.keep("h") for _ in range(30)]
    assert [i + 1 for i, d in enumerate(decisions) if d] == [10, 20, 30]
    s = Sampler(0.25)
    assert [s.keep("h") for _ in range(8)] == [False, False, False, True] * 2


def test_never_and_always_hosts_override_rate() -> None:
    s = Sampler.from_options(Options(sample_rate=0.0, always_hosts=["*.important.com", "api.x.com:443"],
                                     never_hosts=["noisy.com", "*.cdn.net"]))
    assert s is not None
    assert s.keep("a.important.com") and s.keep("B.IMPORTANT.COM:8443")
    assert s.keep("api.x.com")
    assert not s.keep("important.com")  # *.x does not match the apex; rate 0 drops it
    assert not s.keep("noisy.com:443")
    s = Sampler(1.0, always_hosts=["*"], never_hosts=["*.cdn.net"])
    assert not s.keep("img.cdn.net")  # never wins over always
    assert s.keep("anything.org")


def test_override_hosts_do_not_consume_the_counter() -> None:
    s = Sampler(0.5, always_hosts=["vip.com"])
    assert [s.keep("vip.com") for _ in range(3)] == [True] * 3
    assert [s.keep("other.com") for _ in range(4)] == [False, True, False, True]


# --- skip-host -------------------------------------------------------------------------------


def test_skip_host_matcher() -> None:
    m = skip_host_matcher(["*.pinned-app.com", "bank.example.com:443", "10.0.0.?"])
    assert m("api.pinned-app.com:443")
    assert m("API.PINNED-APP.COM")
    assert not m("pinned-app.com:443")
    assert m("bank.example.com")
    assert m("bank.example.com:8443")
    assert m("10.0.0.7:443")
    assert not m("10.0.0.17")
    assert not m("example.com")


def test_skip_host_matcher_empty() -> None:
    m = skip_host_matcher([])
    assert not m("anything.com:443")
