"""Rerun exactness as a property: every leaf key of the config schema, changed on a complete tiny
run, reruns exactly the jobs that read it, and what reads their outputs, and no other.

A job reads the config only through what Snakemake hands it: its params (the shell command's
values), its input files and its output paths. So for each key the test builds, in one process
(tests/job_params.py), the DAG of the complete run's config and of the config with that key
changed, and compares every job's params, inputs and outputs:
- a job whose params, inputs or outputs change reads the key; what Snakemake must rerun is those
  jobs and every job downstream of them (through inputs not marked `ancient`);
- Snakemake must schedule exactly that set (its `needrun`, from the params it records in its
  metadata, its input and mtime checks);
- and a param that changes where Snakemake records nothing (a params function of threads, input,
  output or resources: "derived", never compared) is a setting that reruns nothing: allowed only
  for the keys the schema declares so (`x-reruns: false`: sharding, threads, memory, run time),
  which must not rerun a training or an evaluation job either.
On main before this test (20dcfb6), `teacher.sampling.frames` (and every teacher setting)
failed the third point: rule teacher_shard's settings were a params function of threads, and
the dry run scheduled plan and report only. It also failed an `ancient` clip cache receipt: a
job that reads a key itself must rerun even when what feeds it is rebuilt, which Snakemake does
not evaluate behind an ancient input (`student.cache_frames` rebuilt the cache and reran no run).
"""

from __future__ import annotations

import copy
import json
import os

import pytest
import yaml

from conftest import TINY
from job_params import job_params

# keys a toy run cannot change to another valid value, and why (every other leaf key is changed)
NOT_CHANGEABLE = {
    "dataset.root": "names a user's videos: tests/test_rehearsal.py runs the mydata configs",
    "dataset.name": "another dataset needs its archives: tests/test_rehearsal.py runs ucf101 and hmdb51",
    "dataset.split": "the generated dataset has one split (the config check says so); UCF101's and HMDB51's "
                     "three: tests/test_datasets.py, tests/test_splits.py",
    "dataset.extracted_dir": "only for ucf101 and hmdb51 (the config check refuses it for the generated set): "
                             "tests/test_rehearsal.py",
}

# keys tiny.yaml holds at their minimum, whose other values need another key changed with them (the
# config check says why): the dry run then reruns the readers of either
WITH = {
    "student.frames": {"student.cache_frames": 8},
    "student.size": {"student.cache_size": [20, 20]},
    "distill.frame_level": {"student.frames": 8, "student.cache_frames": 8},
    # another backend is another model: X-CLIP's small config, random weights, at its 4 frames a clip
    "teacher.backend": {"teacher.model": "svar-tiny-xclip", "teacher.pretrained": "none", "teacher.sampling.frames": 4},
}

# a valid other value where the schema alone does not give one (strings naming files or models)
OTHER_VALUE = {
    "name": ["tiny-renamed"],
    # the generated dataset reads none of these: changing one reruns nothing
    "dataset.lists_dir": ["/srv/lists"],
    "dataset.archives_dir": ["/srv/archives"],
    "dataset.video_archive": ["UCF101.rar"],
    "teacher.cache_dir": ["data/weights-elsewhere"],
    "teacher.model": ["ViT-B-32", "RN50"],
    "teacher.pretrained": ["none"],
    "teacher.templates": [["a video of {}."]],
    "teachers": [[{"name": "second", "model": "svar-tiny-clip", "pretrained": "none"}]],
    "student.weights_dir": ["data/weights/elsewhere"],
    "student.pretrained": ["none", "imagenet"],
    "methods": [["supervised", "distill"]],
    "fractions": [[0.25, 0.5]],
    "seeds": [[0, 2]],
    "shots": [[1]],  # a K-shot budget beside the fractions: its own runs, nothing else reruns
    "student.cache_size": [[20, 20]],
    "clip_finetune.templates": [["a video of {}."]],
    "clip_finetune.cache_size": [[72, 72]],  # at least the tiny teacher's 64-pixel input
    "train.crop_scale": [[0.3, 1.0]],
    "train.strong_area": [[0.4, 1.0]],
    "train.strong_cutout": [[0.1, 0.4]],
}


def leaf_keys(config: dict) -> list[tuple[str, dict]]:
    """(dotted key, its schema node) of every leaf of the schema (svar.config.schema_leaves)."""
    from svar.config import schema_leaves

    return schema_leaves()


def get(config, dotted):
    for part in dotted.split("."):
        config = config[part]
    return config


def put(config, dotted, value):
    *parents, last = dotted.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[last] = value


def candidates(dotted: str, node: dict, value) -> list:
    """Values of the key other than `value`, from the schema (enum, type, bounds, multipleOf) or
    OTHER_VALUE, the likeliest first: the first the config check takes is used."""
    if dotted in OTHER_VALUE:
        return list(OTHER_VALUE[dotted])
    if "enum" in node:
        return [v for v in node["enum"] if v != value]
    types = node.get("type") or [n.get("type") for n in node.get("anyOf", [])]
    types = [types] if isinstance(types, str) else types
    if isinstance(value, bool) or "boolean" in types:
        return [not value]
    low = node.get("minimum", node.get("exclusiveMinimum", -1e9))
    high = node.get("maximum", node.get("exclusiveMaximum", 1e9))
    if isinstance(value, int) and "integer" in types:
        step = node.get("multipleOf", 1)
        return [v for v in (value + step, value - step) if low <= v <= high]
    if isinstance(value, (int, float)) or "number" in types or value is None:
        base = value if isinstance(value, (int, float)) else node.get("default", 0.5)
        return [round(c, 6) for c in (base * 1.5, base / 2, base + 0.1, base - 0.1, 0.5)
                if low < c < high and c != value]
    if node.get("pattern", "").startswith("^(auto|cpu"):
        return ["cpu" if value != "cpu" else "auto"]
    return []


def declared_no_rerun(dotted: str, node: dict) -> bool:
    """The schema's word that changing the key reruns nothing (`x-reruns: false`), on the key or
    on the section it is in (resources.*)."""
    from svar.config import no_rerun_keys

    return any(dotted == key or dotted.startswith(key + ".") for key in no_rerun_keys())


def job_id(job) -> str:
    return f"{job['rule']} {json.dumps(job['wildcards'], sort_keys=True)}"


def expected_reruns(base: dict, changed: dict) -> tuple[set, set, set]:
    """(jobs that read the key as Snakemake sees it, those and everything downstream, jobs whose
    params change where Snakemake records nothing) of the changed config's DAG."""
    before = {job_id(j): j for j in base["jobs"]}
    after = {job_id(j): j for j in changed["jobs"]}
    reads, hidden = set(), set()
    for key, job in after.items():
        old = before.get(key)
        if old is None or old["input"] != job["input"] or old["output"] != job["output"] \
                or old["recorded"] != job["recorded"]:
            reads.add(key)
        elif old["params"] != job["params"]:
            hidden.add(key)
    producer = {path: key for key, job in after.items() for path in job["output"]}
    rerun = set(reads)
    changed_any = True
    while changed_any:
        changed_any = False
        for key, job in after.items():
            if key not in rerun and any(producer.get(path) in rerun for path, ancient in job["input"] if not ancient):
                rerun.add(key)
                changed_any = True
    return reads, rerun, hidden


def key_cases(overlay: dict):
    """(key, schema node, overlay with the key changed or None, why not) for every leaf key:
    the first candidate value the workflow's config check takes."""
    from svar.config import ConfigError, load_workflow_config
    from svar.config_checks import check

    config = load_workflow_config(TINY)
    cases = []
    for dotted, node in leaf_keys(config):
        if dotted in NOT_CHANGEABLE:
            cases.append((dotted, node, None, NOT_CHANGEABLE[dotted]))
            continue
        try:
            value = get(config, dotted)
        except KeyError:
            value = None
        refused = []
        for new in candidates(dotted, node, value):
            changed = copy.deepcopy(overlay)
            put(changed, dotted, new)
            for other, other_value in WITH.get(dotted, {}).items():
                put(changed, other, other_value)
            try:
                check(load_workflow_config_from(changed))
            except ConfigError as err:
                refused.append(f"{new!r}: {str(err).splitlines()[-1].strip()}")
                continue
            cases.append((dotted, node, changed, None))
            break
        else:
            cases.append((dotted, node, None, f"no other valid value: {refused or 'none to try'}"))
    return cases


def load_workflow_config_from(overlay: dict) -> dict:
    """The workflow's config (config.yaml, this overlay over it), unchecked."""
    from svar.config import WORKFLOW_CONFIG, merge, read_yaml

    return merge(read_yaml(WORKFLOW_CONFIG), overlay)


def _run_property(tiny_run, tmp_path, keys=None):
    overlay = yaml.safe_load(TINY.read_text())
    cases = [c for c in key_cases(overlay) if keys is None or c[0] in keys]
    files = {"base": [TINY]}
    for dotted, _, changed, _ in cases:
        if changed is not None:
            path = tmp_path / f"{dotted}.yaml"
            path.write_text(yaml.safe_dump(changed))
            files[dotted] = [path]
    dags = job_params(tiny_run[0], files, tmp_path)
    assert "error" not in dags["base"], dags["base"]
    assert not any(j["needrun"] for j in dags["base"]["jobs"]), "the tiny run is not complete"
    failures, covered = [], []
    for dotted, node, changed, _ in cases:
        if changed is None:
            continue
        new = get(changed, dotted)
        dag = dags[dotted]
        if "error" in dag:
            failures.append(f"{dotted} = {new!r}: the workflow refused it: {dag['error'][:300]}")
            continue
        reads, expected, hidden = expected_reruns(dags["base"], dag)
        actual = {job_id(j) for j in dag["jobs"] if j["needrun"]}
        if actual != expected:
            failures.append(f"{dotted} = {new!r}: Snakemake schedules {sorted(actual - expected)} beyond what "
                            f"reads it, and leaves {sorted(expected - actual)} that read it")
        if declared_no_rerun(dotted, node):
            heavy = {k for k in expected if k.split()[0] in ("train", "evaluate", "aggregate")}
            if heavy:
                failures.append(f"{dotted} is declared to rerun nothing, but reruns {sorted(heavy)[:4]}")
        elif hidden:
            failures.append(f"{dotted} = {new!r}: params of {sorted(hidden)[:4]} change where Snakemake records "
                            "nothing (a params function of threads, input, output or resources)")
        covered.append(dotted)
    return cases, covered, failures


def _report(cases, covered, failures):
    skipped = {c[0]: c[3] for c in cases if c[2] is None}
    print(f"\n{len(covered)} of {len(cases)} leaf keys changed and checked; not changed: {skipped}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_every_leaf_key_reruns_exactly_its_readers(tiny_run, tmp_path):
    """~45 s here for the 130-odd keys (one process, one DAG a key)."""
    cases, covered, failures = _run_property(tiny_run, tmp_path)
    unexplained = [c[0] for c in cases if c[2] is None and c[0] not in NOT_CHANGEABLE]
    assert not unexplained, f"keys the test cannot change and does not say why: {unexplained}"
    assert len(covered) >= len(cases) - len(NOT_CHANGEABLE) and len(covered) > 100
    _report(cases, covered, failures)


@pytest.mark.slow
def test_each_job_reads_the_keys_its_params_carry(tiny_run):
    """The other half: a key a job is given and never reads would rerun it for nothing. The
    complete tiny run's `svar train` and `svar clip-cache` jobs recorded the keys of their
    --options their code read (svar.read_tracking): every key a method's or a part's jobs are
    given is read by them. (One run may leave a key unread that another of the method reads: at
    fraction 1 no video is unlabeled, and the unlabeled terms' keys go unread.)"""
    from svar.read_tracking import ENV

    records = [json.loads(p.read_text()) for p in sorted((tiny_run[0] / "config-reads").glob("*.json"))]
    config = yaml.safe_load(TINY.read_text())
    methods = yaml.safe_load((TINY.parents[0] / "config.yaml").read_text())["methods"]
    runs = len(config["fractions"]) * len(config["seeds"])
    by_job: dict = {}
    for r in records:
        argv = r["argv"]
        which = argv[argv.index("--method") + 1] if r["command"] == "train" else argv[argv.index("--part") + 1]
        by_job.setdefault((r["command"], which), []).append(r)
    assert sorted(len(v) for k, v in by_job.items() if k[0] == "train") == [runs] * len(methods), ENV
    assert {k[1] for k in by_job if k[0] == "clip-cache"} == {"train", "test"}
    for job, rs in sorted(by_job.items()):
        given = set.union(*(set(r["given"]) for r in rs))
        read = set.union(*(set(r["read"]) for r in rs))
        assert given - read == set(), f"{job}: given and never read: {sorted(given - read)}"
