"""What Snakemake would run, and what each job is given, for several configs in one process.

For the rerun-exactness test (tests/test_rerun_exactness.py): in a folder, each config's DAG is
built as a dry run builds it (Snakemake's API), and every job of it is written out: its rule and
wildcards, its input files (and which are `ancient`), its outputs, its params as the job gets them
(every one, as the shell command sees it), the params Snakemake records in its metadata and
compares on the next run (`persistence._params`: the ones not derived from input, output,
threads or resources), and whether Snakemake schedules it. Run as a script:
`python tests/job_params.py SPEC_JSON OUT_JSON`, SPEC a {"workdir", "configs": {key: [files]}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job_record(workflow, dag, job) -> dict:
    from snakemake.io import is_flagged

    params = {name: repr(value) for name, value in job.params.items()}
    return {
        "rule": job.rule.name,
        "wildcards": {k: str(v) for k, v in sorted(job.wildcards_dict.items())},
        "input": sorted([str(f), bool(is_flagged(f, "ancient"))] for f in job.input),
        "output": sorted(str(f) for f in job.output),
        "params": params,
        "recorded": [repr(p) for p in workflow.persistence._params(job)],
        "needrun": bool(dag.needrun(job)),
    }


def inspect(workdir: str, configfiles: list[str]) -> dict:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL}, dryrun=True)) as api:
        workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                    config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles]),
                                    snakefile=ROOT / "Snakefile", workdir=Path(workdir))
        workflow_api.dag().execute_workflow(executor="dryrun")
        workflow = workflow_api._workflow
        dag = workflow.dag
        return {"jobs": [job_record(workflow, dag, job) for job in dag.jobs if job.rule.name != "all"]}


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = {}
    for key, files in spec["configs"].items():
        try:
            out[key] = inspect(spec["workdir"], files)
        except Exception as exc:  # the next config still runs; the test reads the failure
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{key}: {'error' if 'error' in out[key] else len(out[key]['jobs'])}", file=sys.stderr, flush=True)
    Path(out_path).write_text(json.dumps(out))


def job_params(workdir, configs: dict, scratch: Path, timeout=1800) -> dict:
    """{key: [configfile, ...]} -> {key: {"jobs": [...]} or {"error": ...}}, in one subprocess."""
    import subprocess

    spec, out = scratch / "job_params_spec.json", scratch / "job_params.json"
    spec.write_text(json.dumps({"workdir": str(workdir),
                                "configs": {str(k): [str(f) for f in v] for k, v in configs.items()}}))
    result = subprocess.run([sys.executable, __file__, str(spec), str(out)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0 and out.exists(), result.stderr[-4000:]
    return json.loads(out.read_text())


if __name__ == "__main__":
    main(*sys.argv[1:])
