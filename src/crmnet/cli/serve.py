"""Subcommand ``serve``: the web pages for biologists (crmnet.serve), on 127.0.0.1 by default."""

from __future__ import annotations

import sys

from crmnet.cli.options import POSITIVE, add_device, add_input, finite_float, int_range


def register(subparsers) -> None:
    """Add the ``serve`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "serve",
        help="web pages: predict, explain, robustness and evolution in the browser",
        description=(
            "Start a web server with pages to predict expression (paste or upload sequences, one or several "
            "models, table, distribution plot, TSV), explain one sequence (saliency logo, single-mutant heat "
            "map, known yeast motifs), compute mutational robustness and evolvability vectors, and evolve "
            "sequences (SSWM, GA, drift; objectives over two models). Models: every --checkpoint, every *.pt "
            "in --models-dir, and the released models downloaded under --data-dir (crmnet download NAME). "
            "Needs the serve extra: pip install 'crmnet[serve]'."
        ),
    )
    add_input(p, "--checkpoint", action="append", default=[], metavar="CKPT",
              help="a crmnet checkpoint to offer (repeatable)")
    add_input(p, "--models-dir", metavar="DIR", help="offer every *.pt checkpoint in DIR")
    add_input(p, "--data-dir", metavar="DIR",
              help="where crmnet download put released models (default: $CRMNET_DATA_DIR, else ./data)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int_range(0, 65535), default=8000, help="port, 0 to 65,535 (default 8000)")
    add_device(p)
    p.add_argument("--max-sequences", type=POSITIVE, default=20_000, help="sequences per prediction (default 20000)")
    p.add_argument("--max-upload-mb", type=finite_float(0, 1024, open_low=True), default=4.0,
                   help="largest request or upload in MB, decompressed (default 4; at most 1024)")
    p.add_argument("--job-seconds", type=finite_float(0, open_low=True), default=600.0,
                   help="time limit of one job in seconds (default 600)")
    p.set_defaults(func=run_serve)


def run_serve(args) -> int:
    """Serve the web pages (predict, explain, robustness, evolution) until interrupted."""
    from crmnet.errors import InputError

    try:
        import uvicorn

        from crmnet.serve.app import create_app
    except ImportError as exc:
        raise InputError(None, f"crmnet serve needs the serve extra ({exc.name} is missing): "
                               "pip install 'crmnet[serve]'") from None
    from crmnet.cli import default_device
    from crmnet.serve.config import ServeConfig
    from crmnet.serve.models import load_models

    try:
        config = ServeConfig(max_sequences=args.max_sequences, max_request_bytes=int(args.max_upload_mb * 1048576),
                             job_seconds=args.job_seconds, device=default_device(args.device))
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    models = load_models(args.checkpoint, args.models_dir, args.data_dir, config.device)
    print(f"crmnet serve: {len(models)} model(s): {', '.join(models)}", file=sys.stderr)
    print(f"crmnet serve: open http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    import ipaddress

    from crmnet.serve.app import LOOPBACK_HOSTS

    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:  # a host name: the page is reached by that name
        loopback = False
    app = create_app(models, config, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
