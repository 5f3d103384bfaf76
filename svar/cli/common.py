"""What the subcommands' parsers share: help from the config schema, the --configfile option."""

from __future__ import annotations

import argparse

from ..config import default, description, schema_properties

# argparse's type for a schema key's type
SCHEMA_TYPES = {"integer": int, "number": float}


def schema_help(key: str) -> str:
    """A config key's schema description as argparse help text: argparse %-formats help (for
    %(default)s), so a literal % in a description is doubled."""
    return description(key).replace("%", "%%")


def add_configfile(p: argparse.ArgumentParser) -> None:
    """--configfile: the workflow's config with overlays, as the subcommands that read a whole
    config take it (plan, fetch-weights, bench)."""
    p.add_argument("--configfile", nargs="*", default=[],
                   help="config overlays over workflow/config/config.yaml, as given to snakemake --configfile")


def add_schema_flags(p: argparse.ArgumentParser, section: str, what: str = "") -> None:
    """One flag per key of a config section (`--frames-per-video` for frames_per_video), with the
    schema's type, default and description (`what` before it: "synthetic: ")."""
    for key in schema_properties(section):
        p.add_argument(f"--{key.replace('_', '-')}", type=schema_type(f"{section}.{key}"),
                       default=default(f"{section}.{key}"),
                       help=f"{what}{schema_help(f'{section}.{key}')} (default %(default)s)")


def schema_type(dotted: str) -> type:
    """argparse's type for a config key: the schema's (an integer key takes int, a number float)."""
    section, _, key = dotted.rpartition(".")
    return SCHEMA_TYPES[schema_properties(section)[key]["type"]]
