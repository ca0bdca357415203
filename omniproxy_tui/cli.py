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
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from proxycore.config import (
    FORMATS,
    ConfigError,
    config_path_default,
    default_config_yaml,
    load_options,
    options_to_yaml,
    parse_size,
    unknown_env_vars,
)
from proxycore.options import Options

from . import __version__

PROG = "omniproxy-tui"
_D = Options()  # defaults, shown in --help


class UserError(Exception):
    """Bad input from the user: one line, exit code 2."""


class RuntimeFailure(Exception):
    """Something failed while doing what the user asked: one line, exit code 1."""


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


# click parameter name -> (Options field, converter)
_RUN_PARAMS: dict[str, tuple[str, Any]] = {
    "host": ("host", None),
    "port": ("port", None),
    "verbose": ("verbose", None),
    "mitm": ("mitm", None),
    "ca_cert": ("ca_cert", None),
    "ca_key": ("ca_key", None),
    "skip_host": ("skip_hosts", _split),
    "ssl_insecure": ("ssl_insecure", None),
    "upstream_ca": ("upstream_ca", None),
    "output": ("output", None),
    "format": ("format", None),
    "filter_header": ("filter_headers", _split),
    "redact": ("redact", None),
    "skip_binary": ("skip_binary", None),
    "max_body_size": ("max_body_size", None),
    "include_host": ("include_hosts", _split),
    "exclude_host": ("exclude_hosts", _split),
    "include_path": ("include_paths", _split),
    "exclude_path": ("exclude_paths", _split),
    "include_method": ("include_methods", _split),
    "exclude_method": ("exclude_methods", _split),
    "sample_rate": ("sample_rate", None),
    "always_host": ("always_hosts", _split),
    "never_host": ("never_hosts", _split),
    "db": ("db", None),
    "upstream": ("upstream", None),
    "max_flows": ("max_flows", None),
    "queue_size": ("queue_size", None),
    "batch_size": ("batch_size", None),
}


def _explicit_overrides(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """{field: value} for the run flags typed on the command line (defaults never clobber the file)."""
    out: dict[str, Any] = {}
    for name, (field, convert) in _RUN_PARAMS.items():
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            value = params[name]
            out[field] = convert(value) if convert else value
    return out


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
@click.option("--host", default=_D.host, show_default=True, help="Address to listen on.")
@click.option("-p", "--port", type=int, default=_D.port, show_default=True, help="Port to listen on (0: any free port).")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
@click.option("--mitm/--no-mitm", default=_D.mitm, show_default=True, help="Decrypt HTTPS with the generated CA.")
@click.option("--ca-cert", metavar="FILE", help="CA certificate [default: ~/.omniproxy/ca/omniproxy-ca.crt].")
@click.option("--ca-key", metavar="FILE", help="CA private key [default: ~/.omniproxy/ca/omniproxy-ca.key].")
@click.option("--skip-host", multiple=True, metavar="PATTERN", help="Tunnel these hosts without MITM (repeatable, a,b ok).")
@click.option("--ssl-insecure", is_flag=True, help="Do not verify upstream server certificates.")
@click.option("--upstream-ca", metavar="FILE", help="Extra CA file (PEM) trusted for upstream servers.")
@click.option("-o", "--output", metavar="FILE", help="Capture file [default: stdout with --no-ui].")
@click.option("-f", "--format", type=click.Choice(FORMATS, case_sensitive=False),
              help="Capture format [default: from the output extension, else ndjson].")
@click.option("--filter-header", multiple=True, metavar="NAME",
              help="Extra header to redact, on top of authorization, cookie, ... (repeatable).")
@click.option("--redact/--no-redact", default=_D.redact, show_default=True, help="Redact sensitive headers in captures.")
@click.option("--skip-binary/--no-skip-binary", default=_D.skip_binary, show_default=True,
              help="Replace binary bodies with a placeholder.")
@click.option("--max-body-size", type=SizeType(), default=_D.max_body_size, show_default=True,
              help="Body bytes kept in captures (1048576, 512k, 1MiB, 10MB).")
@click.option("--include-host", multiple=True, metavar="PATTERN", help="Capture only these hosts (* ? wildcards).")
@click.option("--exclude-host", multiple=True, metavar="PATTERN", help="Never capture these hosts.")
@click.option("--include-path", multiple=True, metavar="PATTERN", help="Capture only these paths.")
@click.option("--exclude-path", multiple=True, metavar="PATTERN", help="Never capture these paths.")
@click.option("--include-method", multiple=True, metavar="METHOD", help="Capture only these methods.")
@click.option("--exclude-method", multiple=True, metavar="METHOD", help="Never capture these methods.")
@click.option("--sample-rate", type=float, default=_D.sample_rate, show_default=True,
              help="Fraction of flows captured (0..1).")
@click.option("--always-host", multiple=True, metavar="PATTERN", help="Always capture these hosts when sampling.")
@click.option("--never-host", multiple=True, metavar="PATTERN", help="Never capture these hosts.")
@click.option("--db", metavar="URL", help="Store flows in a database: sqlite:///abs/path.db, sqlite::memory:.")
@click.option("--upstream", metavar="URL", help="Upstream proxy: http://[user:pass@]host:port.")
@click.option("--max-flows", type=int, default=_D.max_flows, show_default=True, help="Flows kept in the UI's memory.")
@click.option("--queue-size", type=int, default=_D.queue_size, show_default=True,
              help="Records queued for the capture before dropping.")
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True, help="Records written per batch.")
@click.option("--config", "config", metavar="FILE",
              help="Config file [default: ~/.omniproxy/config.yaml when present].")
@click.option("--no-ui", is_flag=True, help="Run headless: one log line per flow on stderr, no terminal UI.")
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config: str | None, no_ui: bool, **params: Any) -> int | None:
    """OmniProxy TUI: an HTTP(S) proxy that shows and captures every exchange.

    Without a command, runs the proxy (with the terminal UI, or headless with --no-ui).
    Settings come from defaults < config file < OMNIPROXY_* environment < these flags.
    """
    ctx.obj = {"config": config, "overrides": _explicit_overrides(ctx, params)}
    if ctx.invoked_subcommand is not None:
        return None
    _warn_unknown_env()
    options = _effective_options(ctx)
    if no_ui:
        from proxycore.headless import run_headless_sync

        return run_headless_sync(options)
    try:
        from omniproxy_tui.app import run_app
    except ImportError as exc:
        missing = getattr(exc, "name", None) == "omniproxy_tui.app"
        detail = "" if missing else f" ({exc})"
        raise UserError(f"the terminal UI is not available yet; use --no-ui{detail}") from None
    return run_app(options)


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
@click.pass_context
def config_show(ctx: click.Context, config: str | None) -> None:
    """Print the effective configuration (defaults < file < environment < flags) as YAML."""
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
    click.echo(options_to_yaml(opts), nl=False)


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
    from proxycore.convert import convert

    try:
        count = convert(input_path, out, fmt.lower())
    except ValueError as exc:  # convert's messages already name the file
        raise UserError(str(exc)) from None
    if out != "-":
        click.echo(f"wrote {count} records to {out} ({fmt.lower()})", err=True)


# ---------------------------------------------------------------- entry point


def _fail(message: str, code: int) -> int:
    click.echo(f"{PROG}: error: {' '.join(str(message).split())}", err=True)
    return code


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn every user error into one line."""
    sys.exit(run(argv))


def _engine_error_types() -> tuple[type[Exception], ...]:
    """User-facing error classes; the engine modules are imported defensively so that a broken
    engine import still leaves `config` and `--help` working."""
    types: list[type[Exception]] = [UserError, ConfigError]
    try:
        from proxycore.errors import StartupError

        types.append(StartupError)
    except ImportError:
        pass
    try:
        from proxycore.certs import CAError

        types.append(CAError)
    except ImportError:
        pass
    return tuple(types)


def run(argv: list[str] | None = None) -> int:
    user_errors = _engine_error_types()
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
    except RuntimeFailure as exc:
        return _fail(str(exc), 1)
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
