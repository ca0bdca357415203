"""The `omniproxy-tui` command: run the proxy (UI or --no-ui), manage the CA and the config file.

Only flags the user actually typed override the config file and environment: click's
`get_parameter_source` tells them apart from defaults. Every user error ends as one line,
`omniproxy-tui: error: ...`, exit code 2 (1 for failures at run time), never a traceback.
Textual is imported only when the UI runs, so `--no-ui` and the subcommands never load it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from omniproxy_tui import __version__
from proxycore.config import (
    FORMATS,
    KEYS,
    ConfigError,
    Key,
    config_path_default,
    default_config_yaml,
    load_options,
    options_to_yaml,
    parse_size,
    unknown_env_vars,
)
from proxycore.options import LIST_KINDS, Options

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow

PROG = "omniproxy-tui"


class UserError(Exception):
    """Bad input from the user: one line, exit code 2."""


class SizeType(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _split(values: tuple[str, ...]) -> list[str]:
    """Repeated and comma-separated values: --skip-host a.com,b.com --skip-host c.com."""
    return [item.strip() for v in values for item in v.split(",") if item.strip()]


# ---------------------------------------------------------------- flags from the option declarations

# The options that have a flag, in declaration order (which is the order --help lists them in).
FLAG_KEYS: tuple[Key, ...] = tuple(k for k in KEYS if k.flag)
_CLICK_TYPES: dict[str, Any] = {"int": int, "float": float}


def _click_option(key: Key) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option for one declared option. Its parameter is named after the Options field.

    Defaults are only shown in --help: a flag the user did not type never overrides the config
    file or the environment (see `_explicit_overrides`), so click's default is never used.
    """
    decls = [d for d in (key.short, key.flag) if d]
    kw: dict[str, Any] = {"help": key.cli_help}
    if key.metavar:
        kw["metavar"] = key.metavar
    if key.kind == "bool":
        if "/" in (key.flag or ""):
            kw.update(default=key.default, show_default=True)
        else:
            kw["is_flag"] = True
    elif key.kind == "count":
        kw["count"] = True
    elif key.kind in LIST_KINDS:
        kw["multiple"] = True
    else:
        if key.kind == "size":
            kw["type"] = SizeType()
        elif key.kind == "format":
            kw["type"] = click.Choice(key.choices or FORMATS, case_sensitive=False)
        elif key.kind in _CLICK_TYPES:
            kw["type"] = _CLICK_TYPES[key.kind]
        if key.default is not None:
            kw.update(default=key.default, show_default=True)
    return click.option(*decls, key.field, **kw)


def _option_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the group with one flag per declared option (as if stacked in declaration order)."""
    for key in reversed(FLAG_KEYS):
        f = _click_option(key)(f)
    return f


def _flag_value(key: Key, value: Any) -> Any:
    if key.kind in ("files", "specs"):
        return list(value)  # -s FILE: a file name may contain a comma, do not split it (nor a rule spec)
    if key.kind in LIST_KINDS:
        return _split(value)
    return value


def _explicit_overrides(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """{field: value} for the run flags typed on the command line (defaults never clobber the file)."""
    return {key.field: _flag_value(key, params[key.field]) for key in FLAG_KEYS
            if ctx.get_parameter_source(key.field) == ParameterSource.COMMANDLINE}


def _effective_options(ctx: click.Context, config: str | None = None) -> Options:
    """Options from the group's flags + config file + environment (used by run and subcommands)."""
    state = ctx.find_root().obj or {}
    path = config or state.get("config")
    return load_options(path, os.environ, state.get("overrides", {}))


def _warn_unknown_env() -> None:
    for name in unknown_env_vars(os.environ):
        click.echo(f"{PROG}: warning: ignoring unknown environment variable {name}", err=True)


# ---------------------------------------------------------------- the group (runs the proxy)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@_option_flags
@click.option("--config", "config", metavar="FILE",
              help="Config file [default: ~/.omniproxy/config.yaml when present].")
@click.option("--no-ui", is_flag=True, help="Run headless: one log line per flow on stderr, no terminal UI.")
@click.option("-r", "--read", "read", metavar="FILE",
              help="Open a capture in the UI (flow file from w, HAR, NDJSON/IR, JSON or a --db SQLite database); "
                   "the proxy still runs and new flows join them.")
@click.option("-n", "--no-server", "no_server", is_flag=True,
              help="Do not start the proxy (with -r: only look at the capture).")
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config: str | None, no_ui: bool, read: str | None, no_server: bool,
        **params: Any) -> int | None:
    """OmniProxy TUI: an HTTP(S) proxy that shows and captures every exchange.

    Without a command, runs the proxy (with the terminal UI, or headless with --no-ui).
    Settings come from defaults < config file < OMNIPROXY_* environment < these flags.
    """
    ctx.obj = {"config": config, "overrides": _explicit_overrides(ctx, params)}
    if ctx.invoked_subcommand is not None:
        return None
    _warn_unknown_env()
    if no_ui and (read is not None or no_server):
        raise UserError(f"{'-r/--read' if read is not None else '-n/--no-server'} needs the UI; "
                        "to convert a capture use: omniproxy-tui export IN -o OUT")
    options = _effective_options(ctx)
    if no_ui:
        if options.intercept:  # a paused flow nobody can resume is a hung client
            raise UserError("--intercept needs the terminal UI: with --no-ui nothing can resume a paused "
                            "flow (no control API yet)")
        from proxycore.headless import run_headless_sync

        return run_headless_sync(options)
    if read is not None and options.output and _same_file(read, options.output):
        # -o truncates its file as the proxy starts: the capture would be gone before it is read
        raise UserError(f"-r and -o both name {read}: -o would overwrite the capture; write to another file")
    batches = _open_capture(read) if read is not None else None
    from omniproxy_tui.app import run_app  # here, not at the top: --no-ui never loads Textual

    # the options screen (O) saves to the file the options came from
    return run_app(options, read=read, read_batches=batches, listen=not no_server,
                   config_path=Path(config).expanduser() if config else None)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def _open_capture(path: str) -> Iterator[list[Flow]]:
    """The capture's flows in batches, its first batch already read: an unreadable or garbled file
    is a one-line error before the UI starts; the rest is read in the UI, off its event loop."""
    import itertools

    from proxycore.capture.load import CaptureError, iter_capture

    it = iter_capture(path)
    try:
        first = next(it, None)
    except CaptureError as exc:
        raise UserError(str(exc)) from None
    return itertools.chain([first] if first else [], it)


# ---------------------------------------------------------------- ca


@cli.group()
def ca() -> None:
    """Manage the root CA used to intercept HTTPS."""


@ca.command("generate", short_help="Create a new root CA.")
@click.option("--force", "-f", is_flag=True, help="Replace an existing CA (clients must trust the new one).")
@click.option("--cert", metavar="FILE", help="Certificate path [default: the configured CA path].")
@click.option("--key", metavar="FILE", help="Key path [default: the configured CA key path].")
@click.option("--org", default="OmniProxy", show_default=True, help="Organization (O) of the CA.")
@click.option("--cn", default="OmniProxy Root CA", show_default=True, help="Common name (CN) of the CA.")
@click.pass_context
def ca_generate(ctx: click.Context, force: bool, cert: str | None, key: str | None, org: str, cn: str) -> None:
    """Create a new root CA (ECDSA P-256, 10 years; key written 0600)."""
    from proxycore.certs import CAError, CertificateAuthority

    opts = _effective_options(ctx)
    cert_path = Path(cert).expanduser() if cert else opts.ca_cert_path
    key_path = Path(key).expanduser() if key else opts.ca_key_path
    existing = [p for p in (cert_path, key_path) if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} already exists (use --force to replace the CA; clients that trust "
                        "the old one will need the new certificate)")
    try:
        authority = CertificateAuthority.generate(cert_path, key_path, org=org, cn=cn)
    except CAError as exc:
        raise UserError(str(exc)) from None
    info = authority.info()
    click.echo(f"CA certificate: {authority.cert_path}")
    click.echo(f"CA key:         {authority.key_path} (0600)")
    click.echo(f"SHA-256:        {info.get('sha256', '')}")
    click.echo(f"Trust it so clients accept intercepted HTTPS: `{PROG} ca info` shows how.")


@ca.command("info", short_help="Show the CA and how to trust it.")
@click.option("--cert", metavar="FILE", help="Certificate to describe [default: the configured CA].")
@click.pass_context
def ca_info(ctx: click.Context, cert: str | None) -> None:
    """Show the CA's subject, validity and fingerprint, and how to trust it."""
    from proxycore.certs import CAError, CertificateAuthority, trust_instructions

    opts = _effective_options(ctx)
    cert_path = Path(cert).expanduser() if cert else opts.ca_cert_path
    key_path = opts.ca_key_path
    if not cert_path.exists():
        raise UserError(f"no CA certificate at {cert_path} (create one with `{PROG} ca generate`; "
                        "the proxy also creates it on first start)")
    if not cert and key_path.exists():
        try:
            info = CertificateAuthority.load(cert_path, key_path).info()
        except CAError as exc:
            raise UserError(str(exc)) from None
    else:
        info = _cert_only_info(cert_path)  # the key may live elsewhere; describing a cert needs none
        info["key_path"] = f"{key_path} (not checked)" if key_path.exists() else f"{key_path} (missing)"
    rows = [
        ("File", info.get("cert_path", str(cert_path))),
        ("Key", info.get("key_path", "")),
        ("Subject", info.get("subject", "")),
        ("Issuer", info.get("issuer", "")),
        ("Valid from", info.get("not_before", "")),
        ("Valid until", info.get("not_after", "")),
        ("Serial", info.get("serial", "")),
        ("SHA-256", info.get("sha256", "")),
    ]
    if info.get("key_type"):
        rows.append(("Key type", info["key_type"]))
    for label, value in rows:
        click.echo(f"{label + ':':<13}{value}")
    click.echo()
    click.echo(trust_instructions(cert_path).rstrip())


def _cert_only_info(cert_path: Path) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read {cert_path}: {exc.strerror or exc}") from None
    except ValueError:
        raise UserError(f"{cert_path} is not a PEM certificate") from None
    fp = cert.fingerprint(hashes.SHA256()).hex().upper()
    return {
        "cert_path": str(cert_path),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": format(cert.serial_number, "X"),
        "sha256": ":".join(fp[i: i + 2] for i in range(0, len(fp), 2)),
    }


@ca.command("path", short_help="Print the CA certificate path.")
@click.option("--key", "show_key", is_flag=True, help="Print the key path instead.")
@click.pass_context
def ca_path(ctx: click.Context, show_key: bool) -> None:
    """Print the CA certificate path, for curl --cacert and the like."""
    opts = _effective_options(ctx)
    click.echo(str(opts.ca_key_path if show_key else opts.ca_cert_path))


# ---------------------------------------------------------------- config


@cli.group("config")
def config_group() -> None:
    """Create or show the YAML configuration."""


@config_group.command("init", short_help="Write a commented config file.")
@click.option("-o", "--output", metavar="FILE", help="Where to write [default: ~/.omniproxy/config.yaml]; - for stdout.")
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing file.")
def config_init(output: str | None, force: bool) -> None:
    """Write a commented config file with every key and its default."""
    text = default_config_yaml()
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output).expanduser() if output else config_path_default()
    if path.exists() and not force:
        raise UserError(f"{path} already exists (use --force to overwrite it)")
    try:
        _write_private(path, text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path}")


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (a config may hold proxy or database passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@config_group.command("show", short_help="Print the effective configuration.")
@click.option("--config", "config", metavar="FILE", help="Config file [default: the group's --config, else "
              "~/.omniproxy/config.yaml when present].")
@click.option("--show-secrets", is_flag=True, help="Print passwords in URLs instead of ***.")
@click.pass_context
def config_show(ctx: click.Context, config: str | None, show_secrets: bool) -> None:
    """Print the effective configuration (defaults < file < environment < flags) as YAML.

    Passwords in URLs (upstream, db) are shown as *** unless --show-secrets is given."""
    # masked by default: this output gets pasted into bug reports and shown on shared screens
    _warn_unknown_env()
    state = ctx.find_root().obj or {}
    path = config or state.get("config")
    opts = _effective_options(ctx, config)
    if path:
        source = str(path)
    elif config_path_default().is_file():
        source = str(config_path_default())
    else:
        source = "none"
    click.echo(f"# effective configuration; config file: {source}")
    click.echo(f"# CA certificate: {opts.ca_cert_path}")
    text = options_to_yaml(opts, mask_secrets=not show_secrets)
    if not show_secrets and text != options_to_yaml(opts):
        click.echo("# passwords are shown as *** (--show-secrets prints them)")
    click.echo(text, nl=False)


# ---------------------------------------------------------------- export


@cli.command("export", short_help="Convert a capture to another format.")
@click.argument("input_path", metavar="IN")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS, case_sensitive=False),
              help="Output format [default: from OUT's extension].")
@click.option("-o", "--output", "out", required=True, metavar="OUT", help="File to write; - for stdout.")
def export(input_path: str, fmt: str | None, out: str) -> None:
    """Convert a capture (NDJSON, JSON, IR or HAR) to another format; headers stay redacted."""
    if not Path(input_path).exists():
        raise UserError(f"{input_path}: no such file")
    if fmt is None:
        if out == "-" or Path(out).suffix.lower().lstrip(".") not in (*FORMATS, "jsonl"):
            raise UserError(f"cannot tell the format from {out!r}; pass -f {'|'.join(FORMATS)}")
        fmt = Options(output=out).capture_format
    from proxycore.capture.convert import convert

    try:
        count = convert(input_path, out, fmt.lower())
    except ValueError as exc:  # convert's messages already name the file
        raise UserError(str(exc)) from None
    if out != "-":
        click.echo(f"wrote {count} records to {out} ({fmt.lower()})", err=True)


# ---------------------------------------------------------------- replay


@cli.command("replay", short_help="Send the requests of a capture again.")
@click.argument("input_path", metavar="FILE")
@click.option("--filter", "filter_expr", metavar="EXPR", help="Only the requests matching this filter expression.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Requests in flight at once (1: in file order, one after the other).")
@click.option("--via-proxy", metavar="URL", help="Send through this HTTP proxy (e.g. a running omniproxy-tui, "
              "to capture the results): http://[user:pass@]host:port.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              metavar="SECONDS", help="Seconds to connect, and for the origin to start and go on answering.")
@click.option("--insecure", is_flag=True, help="Do not verify origin certificates (self-signed origins).")
@click.option("--ca", "ca_file", metavar="FILE", help="Extra CA certificate (PEM) to trust: a private origin's, "
              "or the CA of the --via-proxy proxy when it decrypts HTTPS.")
def replay(input_path: str, filter_expr: str | None, concurrency: int, via_proxy: str | None, timeout: float,
           insecure: bool, ca_file: str | None) -> int:
    """Replay the requests of FILE (HAR, NDJSON/IR, a JSON array, or a flow file) and print the status
    and time of each. Exit code 1 when a request failed (no response: connection, TLS, timeout) or
    could not be sent; HTTP error statuses are responses and do not fail the run."""
    import asyncio
    import time

    from proxycore.capture.replayfile import read_replay_items, replay_requests
    from proxycore.flows.filter import FilterError, parse
    from proxycore.humanize import human_duration

    if not Path(input_path).exists():
        raise UserError(f"{input_path}: no such file")
    match = None
    if filter_expr:
        try:
            match = parse(filter_expr)
        except FilterError as exc:
            raise UserError(f"--filter: {exc}") from None
    try:
        items = [it for it in read_replay_items(input_path) if match is None or match(it.flow)]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not items:
        click.echo(f"no requests to replay in {input_path}" + (f" matching {filter_expr!r}" if match else ""),
                   err=True)
        return 0
    total = len(items)
    width = len(str(total))
    failed = 0

    def line(i: int, status: str, method: str, url: str, rest: str) -> None:
        click.echo(f"[{i + 1:>{width}}/{total}] {status:<4} {method} {url}{rest}")

    sendable = []
    for i, it in enumerate(items):
        req = it.flow.request
        if it.problem is not None:
            failed += 1
            line(i, "SKIP", req.method, req.url, f"  ({it.problem})")
        else:
            sendable.append((i, it))

    def report(n: int, flow: Any) -> None:
        nonlocal failed
        i, it = sendable[n]
        took = human_duration(flow.timings.duration_ms)
        if flow.error:
            failed += 1
            # the engine's advice names the proxy's flags; this command's are --insecure and --ca
            error = flow.error.replace("--ssl-insecure or --upstream-ca", "--insecure or --ca")
            line(i, "ERR", flow.request.method, flow.request.url, f"  {took}  {error}")
        else:
            note = f"  (sent masked: {', '.join(it.redacted)})" if it.redacted else ""
            line(i, str(flow.response.status), flow.request.method, flow.request.url, f"  {took}{note}")

    options = Options(host="127.0.0.1", port=0, mitm=False, ssl_insecure=insecure, upstream=via_proxy,
                      upstream_ca=ca_file, connect_timeout=timeout, response_timeout=timeout,
                      body_idle_timeout=timeout)

    started = time.monotonic()
    asyncio.run(replay_requests(options, [it.flow.request for _, it in sendable], concurrency, report))
    ok = total - failed
    click.echo(f"{total} request{'s' * (total != 1)}: {ok} ok, {failed} failed "
               f"in {time.monotonic() - started:.2f} s", err=True)
    return 1 if failed else 0


# ---------------------------------------------------------------- entry point


def _fail(message: str, code: int) -> int:
    click.echo(f"{PROG}: error: {' '.join(str(message).split())}", err=True)
    return code


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn every user error into one line."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    from proxycore.certs import CAError
    from proxycore.errors import StartupError

    user_errors = (UserError, ConfigError, StartupError, CAError)
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.UsageError as exc:
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
        if no_args and isinstance(exc, no_args) and exc.ctx is not None:  # `omniproxy-tui ca`: show its help
            click.echo(exc.ctx.get_help())
            return 2
        hint = f" (see {PROG} --help)" if exc.ctx is None else f" (see {exc.ctx.command_path} --help)"
        return _fail(exc.format_message() + hint, 2)
    except click.exceptions.Abort:
        click.echo("", err=True)
        return 130
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code or 1)
    except user_errors as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (`... | head`); point it at devnull so the interpreter's flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        return _fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)
    except Exception as exc:  # a bug: still one line, with the traceback on request
        if os.environ.get("OMNIPROXY_DEBUG"):
            traceback.print_exc()
        return _fail(f"unexpected {type(exc).__name__}: {exc} (set OMNIPROXY_DEBUG=1 for the traceback)", 1)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    main()
