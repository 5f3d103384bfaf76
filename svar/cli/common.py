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


def add_budget_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--fraction f or --shots K, one of them: the run's label budget (the grid's `fractions` or
    `shots`), recorded with its results."""
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--fraction", type=float, help=f"labeled fraction in (0, 1]{what}")
    budget.add_argument("--shots", type=int, help=f"K labeled videos a class{what}")


def budget_of(args) -> dict:
    """{"fraction": f} or {"fraction": None, "shots": K}: the budget as results record it (a
    fraction run's records carry no shots key, as before the axis existed; a K-shot run's
    fraction is filled in from its split, svar.splits.labeled_fraction)."""
    return {"fraction": args.fraction} if args.shots is None else {"fraction": None, "shots": args.shots}
