"""Dry runs of several configs in one Python process (Snakemake's API), for the tests.

A `snakemake -n` of its own costs each config ~5 s here, most of it importing torch, open_clip
and svar again; in one process the second and later dry runs take under a second each. Run as
a script: `python tests/dry_runs.py RUNS_JSON`, RUNS_JSON a list of {"key", "workdir",
"configfiles", "cores"}; each run's log (what `snakemake -n` prints; "printshellcmds": true adds the shell commands, as `-p`)
follows a line `MARK <key>` on stderr, and a run that fails prints `MARK-FAILED <key>: <error>`
after it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARK = "@@@@ dry run"
ROOT = Path(__file__).resolve().parents[1]


def main(runs: list[dict]) -> None:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    for run in runs:
        print(f"{MARK} {run['key']}", file=sys.stderr, flush=True)
        try:
            with SnakemakeApi(OutputSettings(printshellcmds=run.get("printshellcmds", False), dryrun=True)) as api:
                workflow = api.workflow(resource_settings=ResourceSettings(cores=run["cores"]),
                                        config_settings=ConfigSettings(configfiles=[Path(c) for c in
                                                                                    run["configfiles"]]),
                                        snakefile=ROOT / "Snakefile", workdir=Path(run["workdir"]))
                workflow.dag().execute_workflow(executor="dryrun")
        except Exception as exc:  # the next config still runs; the test reads the failure
            print(f"{MARK}-FAILED {run['key']}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def dry_runs(runs: dict, printshellcmds: bool = False, timeout=600) -> dict:
    """{key: (workdir, configfiles, cores)} -> {key: CompletedProcess}: each config's dry run, all
    in one subprocess, as `snakemake -n [-p] --cores C --configfile ...` would give it (its log as
    both stdout and stderr; returncode 1 for a run that failed)."""
    import subprocess

    keys = {str(k): k for k in runs}  # JSON's keys are strings: the caller's may be numbers
    spec = [{"key": str(k), "workdir": str(w), "configfiles": [str(c) for c in files], "cores": cores,
             "printshellcmds": printshellcmds} for k, (w, files, cores) in runs.items()]
    result = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True, text=True,
                            timeout=timeout)
    out: dict = {}
    for chunk in result.stderr.split(f"{MARK} ")[1:]:
        name, log = chunk.split("\n", 1)
        key = keys[name]
        w, files, cores = runs[key]
        args = ["snakemake", "-n", "--cores", str(cores), "--directory", str(w),
                *(["--configfile", *map(str, files)] if files else [])]
        out[key] = subprocess.CompletedProcess(args, 1 if f"{MARK}-FAILED {name}" in log else 0, log, log)
    missing = set(runs) - set(out)
    assert not missing, f"no dry run of {missing}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return out


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
