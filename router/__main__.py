"""Command line: `python -m router serve | console | simulate | policy ... | keys ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn


def _serve(args: argparse.Namespace) -> int:
    from router.config import Settings, load_seed
    from router.policy import PolicyError
    from router.server import create_app

    try:  # configuration errors are a message, not a start-up traceback
        settings = Settings.from_env()
        load_seed(settings.config_path)
    except (ValueError, PolicyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    if args.workers == 1:
        uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level,
                    access_log=args.access_log)
        return 0
    from router.workers import serve_workers

    return serve_workers(settings, args.workers, host=args.host, port=args.port, log_level=args.log_level,
                         access_log=args.access_log)


def _simulate(args: argparse.Namespace) -> int:
    from router.simulator import Behaviour, create_app

    behaviour = Behaviour(ttft_ms=args.ttft_ms, tokens_per_s=args.tokens_per_s, answer_tokens=args.answer_tokens,
                          mode=args.mode, fail_rate=args.fail_rate, error_status=args.error_status)
    print(f"tier simulator on http://{args.host}:{args.port}/v1 ({behaviour})", flush=True)
    uvicorn.run(create_app(behaviour), host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def _console(args: argparse.Namespace) -> int:
    from router.console import run

    return run(args.host, args.port, headless=not args.browser, warm_first=not args.no_warm)


def _policy(args: argparse.Namespace) -> int:
    from router import policy_admin

    return policy_admin.main(args)


def _keys(args: argparse.Namespace) -> int:
    from storage.api_keys import ApiKeyError, create_key, list_keys, revoke_key
    from storage.db import make_engine, migrate

    db = make_engine()
    migrate(db)
    try:
        if args.action == "create":
            key, row = create_key(db, args.name)
            print(f"created key {row.prefix}… for {row.name!r}; it is shown once, store it now:\n{key}")
        elif args.action == "list":
            for row in list_keys(db):
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                print(f"{row.prefix}…  {row.name}  created {row.created_at:%Y-%m-%d %H:%M}  {state}")
        elif args.action == "revoke":
            row = revoke_key(db, args.prefix)
            print(f"revoked {row.prefix}… ({row.name})")
    except ApiKeyError as exc:
        print(f"error: {exc}")
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the OpenAI-compatible routing API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("ROUTER_WORKERS") or 1),
                       help="server processes sharing the port (default ROUTER_WORKERS, else 1); "
                            "about one per core (README, Scaling)")
    serve.set_defaults(func=_serve)

    console = sub.add_parser("console", help="run the operator console (Streamlit), warmed before the first page")
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=8501)
    console.add_argument("--browser", action="store_true", help="open a browser tab once it is up")
    console.add_argument("--no-warm", action="store_true", help="build the engine on the first page load instead")
    console.set_defaults(func=_console)

    sim = sub.add_parser("simulate", help="run an OpenAI-compatible tier simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9000)
    sim.add_argument("--ttft-ms", type=float, default=150.0, help="delay before the first token")
    sim.add_argument("--tokens-per-s", type=float, default=60.0, help="0 sends every token at once")
    sim.add_argument("--answer-tokens", type=int, default=48)
    sim.add_argument("--mode", default="ok", choices=["ok", "error", "hang", "malformed", "drop"])
    sim.add_argument("--fail-rate", type=float, default=1.0, help="share of requests that get --mode")
    sim.add_argument("--error-status", type=int, default=500)
    sim.set_defaults(func=_simulate)

    pol = sub.add_parser("policy", help="list, show, diff, activate and roll back policy versions")
    pol_sub = pol.add_subparsers(dest="action", required=True)
    pol_sub.add_parser("list", help="policies, versions and which is active")
    show = pol_sub.add_parser("show", help="a version as YAML")
    show.add_argument("name")
    show.add_argument("version", nargs="?", type=int)
    add = pol_sub.add_parser("add", help="validate a YAML file and store it as a new version")
    add.add_argument("file")
    add.add_argument("--comment")
    add.add_argument("--activate", action="store_true")
    act = pol_sub.add_parser("activate", help="activate a version (rolling back is activating an older one)")
    act.add_argument("name")
    act.add_argument("version", type=int)
    diff = pol_sub.add_parser("diff", help="diff two versions")
    diff.add_argument("name")
    diff.add_argument("old", type=int)
    diff.add_argument("new", type=int)
    sync = pol_sub.add_parser("sync", help="make the config file's changed policies new versions (and activate them)")
    sync.add_argument("--config", help="the seed file (default: ROUTER_CONFIG, else config/router.yaml)")
    sync.add_argument("--dry-run", action="store_true", help="show what differs, change nothing")
    sync.add_argument("--no-activate", action="store_true", help="store the new versions without activating them")
    pol.set_defaults(func=_policy)

    keys = sub.add_parser("keys", help="create, list and revoke client API keys (used with ROUTER_AUTH=keys)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key; the plaintext is printed once")
    create.add_argument("name", help="who uses the key")
    keys_sub.add_parser("list", help="keys by prefix, with their state")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")
    keys.set_defaults(func=_keys)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":  # alembic narrates every migration step, httpx every tier call, at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
