"""Raw dataset formats -> RecBole atomic files.

``recbole-mm convert FORMAT --src PATH --out DATA_DIR --name DATASET [options]`` writes
``DATA_DIR/DATASET/`` (layout, free-text storage and shared options: :mod:`.common`; each format:
its module). From Python: ``convert("mmrec", src, out, name, keep_split=True)``.

Formats: ``mmrec`` (MMRec ``.inter`` + ``.npy``), ``lightgcn-txt`` (``user item item ...`` lines),
``hetrec-lastfm`` (HetRec 2011 Last.fm), ``movielens`` (ml-100k, ml-1m, ml-10m), ``table`` (any
CSV/TSV/Parquet with a column mapping), ``amazon`` (2014/2018 review JSON lines, or the
LATTICE/FREEDOM JSON split).
"""

import argparse

from recbole_mm.dataset_tools.convert import (
    amazon,
    hetrec_lastfm,
    lightgcn_txt,
    mmrec,
    movielens,
    table,
)
from recbole_mm.dataset_tools.convert.common import (
    ConversionError,
    add_common_arguments,
    build,
    check_target,
)

FORMATS = {
    module.NAME: module
    for module in (mmrec, lightgcn_txt, hetrec_lastfm, movielens, table, amazon)
}

__all__ = ["FORMATS", "ConversionError", "add_convert_parser", "convert", "convert_args"]


def _add_format_arguments(parser, module):
    add_common_arguments(parser)
    module.add_arguments(parser)
    parser.set_defaults(format=module.NAME)


def add_convert_parser(subparsers):
    """Add the ``convert`` subcommand (one sub-subcommand per format) to an argparse subparsers."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a raw dataset to RecBole atomic files",
        description=__doc__.split("\n")[0],
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, module in FORMATS.items():
        sub = formats.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_format_arguments(sub, module)
    parser.set_defaults(handler=_handle)
    return parser


def convert_args(args):
    """Convert with parsed arguments (``args.format`` and the options); returns build()'s
    summary."""
    check_target(args)
    return build(FORMATS[args.format].load(args), args)


def convert(format, src, out, name, **options):
    """Convert from Python: ``options`` are the command-line options with ``_`` for ``-``
    (``keep_split=True``, ``kcore=5``, ``item_text="x.tsv"``; True is a flag, None and False
    leave the option out).

    Returns:
        dict: the summary of :func:`~recbole_mm.dataset_tools.convert.common.build`.
    """
    if format not in FORMATS:
        raise ConversionError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
    parser = argparse.ArgumentParser(prog=f"convert {format}")
    _add_format_arguments(parser, FORMATS[format])
    known = {action.dest for action in parser._actions}
    argv = ["--src", str(src), "--out", str(out), "--name", name]
    for key, value in options.items():
        if key not in known:
            raise TypeError(f"convert {format}: unknown option {key!r}")
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return convert_args(parser.parse_args(argv))


def _handle(args, extra):
    summary = convert_args(args)
    print(
        f"wrote {summary['path']}: {summary['users']} users, {summary['items']} items, "
        f"{summary['interactions']} interactions"
    )
    for file_name, rows in summary["files"].items():
        print(f"  {file_name}: {rows}")
    for note in summary["notes"]:
        print(f"note: {note}")
