"""``affectlens serve``: run the service with uvicorn.

Settings come from ``--config service.toml`` (a ``[service]`` table of :class:`ServiceConfig`
fields), overridden by flags. ``--new-key NAME`` creates an API key, stores its hash in
``--api-key-file`` and prints the key once.

Example:
    affectlens serve --new-key lab-ux --api-key-file keys.txt
    affectlens serve --host 0.0.0.0 --port 8000 --data-dir /srv/affectlens --api-key-file keys.txt
    affectlens serve --allow-model models/callcentre --new-key cc --key-model callcentre --api-key-file keys.txt
    affectlens serve --engine ray --ray-address auto --api-key-file keys.txt
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to the ``affectlens`` parser's subparsers."""
    sv = subparsers.add_parser("serve", help="run the REST/WebSocket service (needs the 'service' extra)")
    sv.add_argument("--config", metavar="TOML", help="service config file ([service] table); flags override it")
    sv.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=None, help="port (default 8000)")
    sv.add_argument("--data-dir", default=None, metavar="DIR", help="uploads, results, database (./affectlens-data)")
    sv.add_argument("--database-url", default=None, metavar="URL",
                    help="jobs, audit log and rate limits: any SQLAlchemy URL, e.g. sqlite:///PATH (default: "
                         "affectlens.db in --data-dir) or postgresql+psycopg://USER:PASSWORD@HOST/DBNAME (needs "
                         "the 'postgres' extra); server processes sharing one database share its rate limits")
    sv.add_argument("--api-key-file", default=None, metavar="FILE",
                    help="hashed API keys, one 'name:sha256[:rate_per_minute][:model=NAME]' per line; without keys the "
                         "server runs in open mode, allowed on loopback only")
    sv.add_argument("--new-key", metavar="NAME", help="create an API key in --api-key-file, print it and exit")
    sv.add_argument("--key-model", metavar="MODEL", default=None,
                    help="with --new-key: the key's default model (a name the server serves)")
    sv.add_argument("--model", default=None, metavar="NAME_OR_DIR",
                    help="the default emotion model (a shipped name or a model folder; default: the shipped default)")
    sv.add_argument("--allow-model", action="append", default=None, metavar="NAME_OR_DIR",
                    help="another model requests may name (repeatable): a shipped name, or a model folder "
                         "(affectlens train --data ... --out DIR), named after the folder")
    sv.add_argument("--models-dir", default=None, metavar="DIR",
                    help="a folder of model folders, each allowed under its folder name")
    sv.add_argument("--engine", choices=["local", "ray"], default=None,
                    help="where video jobs run: local worker processes (default) or Ray tasks (the engine of "
                         "'affectlens batch --engine ray'; needs the 'batch' extra)")
    sv.add_argument("--ray-address", default=None, metavar="auto|ray://HOST:PORT",
                    help="with --engine ray: the cluster to join (default: start a local Ray)")
    sv.add_argument("--no-consent-required", action="store_true",
                    help="do not require a consent declaration (logged; for closed lab set-ups only)")
    sv.add_argument("--max-upload-mb", type=float, default=None, metavar="MB",
                    help="largest video upload (default 500; images: 20)")
    sv.add_argument("--rate-limit", type=int, default=None, metavar="N", help="requests per key per minute (default 120; 0 = no limit)")
    sv.add_argument("--ttl-hours", type=float, default=None, help="delete results and media this long after a job ends (default 24)")
    sv.add_argument("--workers", type=int, default=None, help="video jobs running at once, one process each (default 1)")
    sv.add_argument("--threads", type=int, default=None, metavar="N",
                    help="ONNX Runtime threads per model session in the API and worker processes (0 = default)")
    sv.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                    help="allow this browser origin (repeatable; CORS is off by default)")
    sv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                    help="server log detail (default info)")
    sv.set_defaults(func=cmd_serve)
    return sv


def cmd_serve(args) -> int:
    from affectlens.service.config import ServiceConfig, add_api_key

    if args.new_key:
        if not args.api_key_file:
            print("affectlens: error: --new-key needs --api-key-file FILE", file=sys.stderr)
            return 2
        try:
            key = add_api_key(args.api_key_file, args.new_key, model=args.key_model)
        except ValueError as exc:
            print(f"affectlens: error: {exc}", file=sys.stderr)
            return 2
        print(key)
        print(f"affectlens: key {args.new_key!r} added to {args.api_key_file} (only its sha256 is stored; "
              "this is the only time the key is shown)", file=sys.stderr)
        return 0
    try:
        import uvicorn

        from affectlens.service.app import create_app
    except ImportError as exc:
        print(f"affectlens: error: the service needs its extra: pip install 'affectlens[service]' ({exc})",
              file=sys.stderr)
        return 2
    overrides = {"host": args.host, "port": args.port, "data_dir": args.data_dir, "database_url": args.database_url,
                 "api_key_file": args.api_key_file, "max_upload_mb": args.max_upload_mb,
                 "rate_limit_per_minute": args.rate_limit, "result_ttl_hours": args.ttl_hours,
                 "max_workers": args.workers, "threads": args.threads,
                 "cors_origins": tuple(args.cors_origin) if args.cors_origin else None,
                 "consent_required": False if args.no_consent_required else None,
                 "model": args.model, "allowed_models": tuple(args.allow_model) if args.allow_model else None,
                 "models_dir": args.models_dir, "engine": args.engine, "ray_address": args.ray_address}
    os.umask(0o077)  # uploads, results, logs and the database: owner only
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.config:
            config = ServiceConfig.from_toml(args.config, **overrides)
        else:
            config = ServiceConfig(**{k: v for k, v in overrides.items() if v is not None})
        app = create_app(config)
    except ValueError as exc:
        print(f"affectlens: error: {exc}", file=sys.stderr)
        return 2
    from affectlens.service.connections import ensure_file_handles, guarded_protocol

    fit = ensure_file_handles(config.max_connections)
    if fit != config.max_connections:
        config = dataclasses.replace(config, max_connections=fit)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level, timeout_keep_alive=5,
                ws_max_size=int(config.max_image_mb * 2 ** 20) + 64, http=guarded_protocol(config))
    return 0
