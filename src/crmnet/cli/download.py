"""Subcommand ``download``: fetch public data and released models, verified and resumable (crmnet.data.download)."""

from __future__ import annotations

import sys

from crmnet.cli.options import add_output, add_overwrite, add_quiet


def register(subparsers) -> None:
    """Add the ``download`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    from crmnet.data.catalogue import SOURCES  # stdlib only: cheap enough for --help

    p = subparsers.add_parser(
        "download",
        help="download the training data, test sets, peer predictions, or released models (imported as checkpoints)",
        description=(
            "Fetch public data into DIR with the layout evaluate expects (DIR/vaishnav2022/test, "
            "DIR/vaishnav2022/peer_predictions, DIR/legnet2023, DIR/models, DIR/zenodo<record>). Every file is "
            "checked (Zenodo md5 from its records API; sha256 or git blob id for GitHub files pinned to a full "
            "commit hash), written as FILE.part and renamed when verified; an interrupted download resumes; "
            "complete files are skipped. Names: complex, defined (training data, ~3 GB and ~2 GB), test-sets, "
            "peer-predictions, legnet, dream2022 (DIR/dream2022 + the DREAM training file), dream2022-test, "
            "crmnet-authors, and the released models of `crmnet zoo` "
            "(deepatt-complex, legnet-complex, ...), each imported once verified as DIR/checkpoints/NAME.pt."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help=f"what to download: {', '.join(SOURCES)}")
    add_output(p, "--out", metavar="DIR", into=True, help="data directory (default: ./data)", default="data")
    p.add_argument("--list", action="store_true", help="list the downloads and exit")
    add_overwrite(p, "a file whose checksum does not match (complete, matching files are always kept)")
    p.add_argument("--zenodo-url", help="Zenodo base URL (default: $CRMNET_ZENODO_URL or https://zenodo.org)")
    p.add_argument("--github-url", help="raw GitHub base URL (default: $CRMNET_GITHUB_RAW_URL or "
                   "https://raw.githubusercontent.com)")
    add_quiet(p)
    p.set_defaults(func=run_download)


def run_download(args) -> int:
    """Download the training data, test sets, peer predictions or released models.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of ``crmnet download``.

    Returns
    -------
    int
        The exit status: 0, or 2 when no download is named (the list of names is printed then); other user
        errors are raised as :class:`~crmnet.errors.CrmnetError`.
    """
    from crmnet.data.catalogue import SOURCES
    from crmnet.data.download import download

    if args.list or not args.names:
        for name, source in SOURCES.items():
            print(f"{name:29s} {source.description}")
        if not args.list:
            print("crmnet: error: name at least one download (or --list)", file=sys.stderr)
        return 0 if args.list else 2
    download(args.names, args.out, overwrite=args.overwrite, zenodo_url=args.zenodo_url, github_url=args.github_url,
             progress=not args.quiet, log=print)
    return 0
