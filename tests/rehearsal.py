"""What the rehearsals of the shipped configs share: the toy videos in each dataset's own layout,
and which overlays and which layout rehearse each file of workflow/config/.

A rehearsal runs a shipped config end to end under workflow/config/smoke.yaml (sizes, steps,
seeds, fractions, resources) with one more overlay, the "site": where this machine holds the
data (a folder in the dataset's own layout, made here from the generated set, and the published
lists the config imports, written for those videos in the paper's format) and, where the config's
teacher or student weights cannot be downloaded here, random ones. An overlay laid over another
shipped config that leaves the teacher to it (ucf101-ltg.yaml over ucf101.yaml) runs with the
generated set's small CLIP: the base config's own rehearsal runs its teacher. Nothing else differs
from what a user runs.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "workflow" / "config"
SMOKE = CONFIGS / "smoke.yaml"

# the layouts a rehearsal can run on: the generated set itself (a generated config makes its
# own), and folders made from it in UCF101's and HMDB51's extracted layouts, a user's folder and
# a user's CSV
LAYOUTS = ("generated", "ucf101", "hmdb51", "user_folder", "user_csv")


@dataclass(frozen=True)
class Rehearsal:
    """How one shipped config is rehearsed: the overlays given before it (a config that is an
    overlay of another, e.g. two-teachers.yaml of tiny.yaml) and after it (smoke.yaml, unless
    the config is toy-sized itself), and the layout its data comes in."""

    layout: str
    before: tuple[str, ...] = ()
    smoke: bool = True
    # the config's teacher weights are a download this machine cannot make: random ones instead
    random_teacher: bool = False
    # an overlay that leaves the teacher to the config it is laid over (`before`), whose own
    # rehearsal runs that teacher: rehearsed with the generated set's small CLIP (random weights),
    # so that the suite spends its time on what the overlay sets, not on a ViT-B/16 on a CPU
    tiny_teacher: bool = False
    # nor its student's ImageNet weights: a random initialisation instead
    random_student: bool = False
    # the published lists it imports (dataset.lists_dir), written here for the toy videos in that
    # paper's format: videossl, svformer or vifi (None: it imports none)
    lists: str | None = None

    def __post_init__(self):
        assert self.layout in LAYOUTS, self.layout


# every file of workflow/config/ and how it is rehearsed (tests/test_rehearsal.py fails for a
# file without an entry, and for an entry without a file)
REHEARSALS = {
    # the default benchmark at toy size: smoke.yaml's own rehearsal
    "config.yaml": Rehearsal("generated"),
    "smoke.yaml": Rehearsal("generated"),
    "tiny.yaml": Rehearsal("generated", smoke=False),
    "full.yaml": Rehearsal("generated"),
    "two-teachers.yaml": Rehearsal("generated", before=("tiny.yaml",)),
    "scale.yaml": Rehearsal("generated"),
    "ucf101.yaml": Rehearsal("ucf101", random_teacher=True),
    "hmdb51.yaml": Rehearsal("hmdb51", random_teacher=True),
    "mydata.example.yaml": Rehearsal("user_folder", random_teacher=True),
    "mydata-3dcnn.example.yaml": Rehearsal("user_csv", before=("ucf101.yaml",), tiny_teacher=True),
    # the reproductions of published protocols, on their papers' lists (written for the toy videos)
    "ucf101-ltg.yaml": Rehearsal("ucf101", before=("ucf101.yaml",), tiny_teacher=True, lists="videossl"),
    "hmdb51-ltg.yaml": Rehearsal("hmdb51", before=("hmdb51.yaml",), tiny_teacher=True, lists="videossl"),
    "ucf101-svformer.yaml": Rehearsal("ucf101", before=("ucf101.yaml",), tiny_teacher=True, random_student=True,
                                      lists="svformer"),
    "hmdb51-svformer.yaml": Rehearsal("hmdb51", before=("hmdb51.yaml",), tiny_teacher=True, random_student=True,
                                      lists="svformer"),
    "ucf101-vifi.yaml": Rehearsal("ucf101", before=("ucf101.yaml",), tiny_teacher=True, lists="vifi"),
    "hmdb51-vifi.yaml": Rehearsal("hmdb51", before=("hmdb51.yaml",), tiny_teacher=True, lists="vifi"),
}


def shipped_configs() -> list[str]:
    return sorted(p.name for p in CONFIGS.glob("*.yaml"))


def config_files(name: str, site: Path | None, smoke: bool | None = None) -> tuple[str, ...]:
    """The --configfile list of a rehearsal: the overlays before the config, the config, smoke.yaml
    (`smoke` None: as the rehearsal says) and the site overlay (None: none). config.yaml, which
    Snakemake reads before any --configfile, is not repeated: `config.yaml + smoke.yaml` is
    smoke.yaml's rehearsal too."""
    r = REHEARSALS[name]
    files = [CONFIGS / f for f in (*r.before, name) if f != "config.yaml"]
    if (r.smoke if smoke is None else smoke) and SMOKE not in files:
        files.append(SMOKE)
    if site is not None:
        files.append(site)
    return tuple(map(str, files))


def site_overlay(name: str, layouts: dict, folder: Path) -> Path | None:
    """The overlay saying where this machine holds the rehearsal's data (and, where the config's
    weights are a download, that the teacher's are random), written into `folder`; None for a
    generated config (it makes its own data)."""
    r = REHEARSALS[name]
    site: dict = {}
    if r.layout in ("ucf101", "hmdb51"):
        site["dataset"] = {"extracted_dir": str(layouts[r.layout])}
    elif r.layout in ("user_folder", "user_csv"):
        site["dataset"] = {"root": str(layouts[r.layout])}
    if r.random_teacher:
        site["teacher"] = {"pretrained": "none"}
    if r.tiny_teacher:
        site["teacher"] = {"model": "svar-tiny-clip", "pretrained": "none"}
    if r.random_student:
        site["student"] = {"pretrained": "none"}
    if r.lists is not None:
        from svar.config import load_workflow_config

        # lists for every budget of the config as shipped, and for the rehearsal's (smoke.yaml's, TOY_SHOTS)
        grid = load_workflow_config(*config_files(name, None, smoke=False))
        budgets = sorted({*grid["fractions"], TOY_FRACTION}) if r.lists != "vifi" else sorted({*grid["shots"], TOY_SHOTS})
        site.setdefault("dataset", {})["lists_dir"] = str(LIST_WRITERS[r.lists](layouts[r.layout], r.layout,
                                                                                 folder / f"lists-{name}", budgets))
        if r.lists == "vifi":  # K-shot lists: the toy set's budget is one shot, as smoke.yaml's is one fraction
            site.update(fractions=[], shots=[TOY_SHOTS])
    if not site:
        return None
    path = folder / f"site-{name}"
    path.write_text(yaml.safe_dump(site))
    return path


# --------------------------------------------------------------------------- published lists

# smoke.yaml's fraction and the rehearsal's K: the budgets the toy lists are written for
TOY_FRACTION, TOY_SHOTS = 0.5, 1


def _layout_videos(root: Path, layout: str) -> tuple[list[str], list[tuple[str, str, int]], set[str]]:
    """(dataset's list name, every video as (class, stem, 0-based label) in a fixed order, the
    test stems of split 1) of a UCF101 or HMDB51 layout made by make_layouts, labelled as the
    dataset's index labels them (UCF101: classInd.txt; HMDB51: class folders sorted)."""
    if layout == "ucf101":
        lists = root / "ucfTrainTestlist"
        order = [line.split()[1] for line in (lists / "classInd.txt").read_text().splitlines() if line.strip()]
        test = {Path(line.strip()).stem for line in (lists / "testlist01.txt").read_text().splitlines() if line.strip()}
        videos_dir = root / "UCF-101"
    else:
        order = sorted(p.name for p in (root / "hmdb51_org").iterdir())
        test = {line.split()[0].rsplit(".", 1)[0]
                for path in (root / "testTrainMulti_7030_splits").glob("*_test_split1.txt")
                for line in path.read_text().splitlines() if line.split()[1:2] == ["2"]}
        videos_dir = root / "hmdb51_org"
    videos = [(cls, path.stem, order.index(cls)) for cls in order for path in sorted((videos_dir / cls).glob("*.avi"))]
    return layout, videos, test


def _toy_labeled(videos, test, fraction: float | None = None, per_class: int | None = None) -> set[str]:
    """The labeled stems of the toy lists: floor(fraction × N) of the pool (at least one, spread
    over it, as VideoSSL's random lists are), or the first `per_class` of each class."""
    pool = [v for v in videos if v[1] not in test]
    if per_class is not None:
        return {stem for cls in dict.fromkeys(c for c, _, _ in pool)
                for stem in [s for c, s, _ in pool if c == cls][:per_class]}
    n = max(1, int(fraction * len(pool)))
    return {pool[(i * len(pool)) // n][1] for i in range(n)}


def write_videossl_lists(root: Path, layout: str, out: Path, fractions) -> Path:
    """VideoSSL's files (as LTG republishes them) for the toy videos: `Class/stem frames label`."""
    dataset, videos, test = _layout_videos(root, layout)
    out.mkdir(parents=True)

    def write(name, rows):
        (out / name).write_text("".join(f"{c}/{s} 30 {label}\n" for c, s, label in rows))

    pool = [v for v in videos if v[1] not in test]
    for fraction in fractions:
        labeled, percent = _toy_labeled(videos, test, fraction), f"{fraction * 100:g}"
        write(f"{dataset}_train_{percent}_percent_labeled_split_1_rawframes.txt", [v for v in pool if v[1] in labeled])
        write(f"{dataset}_train_{percent}_percent_unlabeled_split_1_rawframes.txt",
              [v for v in pool if v[1] not in labeled])
    write(f"{dataset}_val_split_1_rawframes.txt", [v for v in videos if v[1] in test])
    return out


def write_svformer_lists(root: Path, layout: str, out: Path, fractions) -> Path:
    """SVFormer's folders for the toy videos: list_<ucf|hmdb>_<p>/ with train.csv, unlabel.csv and
    test.csv, `<path on the authors' machine> label` a line."""
    dataset, videos, test = _layout_videos(root, layout)
    pool = [v for v in videos if v[1] not in test]
    for fraction in fractions:
        labeled = _toy_labeled(videos, test, fraction)
        folder = out / f"list_{'ucf' if dataset == 'ucf101' else 'hmdb'}_{fraction * 100:g}"
        folder.mkdir(parents=True)

        def write(name, rows):
            (folder / name).write_text("".join(f"/data/{dataset}/{c}/{s}.avi {label}\n" for c, s, label in rows))

        write("train.csv", [v for v in pool if v[1] in labeled])
        write("unlabel.csv", [v for v in pool if v[1] not in labeled])
        write("test.csv", [v for v in videos if v[1] in test])
    return out


def write_vifi_lists(root: Path, layout: str, out: Path, shots) -> Path:
    """ViFi-CLIP's files for the toy videos: train1_few_shot_<K>.txt and val1.txt, `<file> <label>`."""
    _, videos, test = _layout_videos(root, layout)
    out.mkdir(parents=True)
    for k in shots:
        labeled = _toy_labeled(videos, test, per_class=k)
        (out / f"train1_few_shot_{k}.txt").write_text(
            "".join(f"{s}.avi {label}\n" for _, s, label in videos if s in labeled))
    (out / "val1.txt").write_text("".join(f"{s}.avi {label}\n" for _, s, label in videos if s in test))
    return out


LIST_WRITERS = {"videossl": write_videossl_lists, "svformer": write_svformer_lists, "vifi": write_vifi_lists}


# --------------------------------------------------------------------------- the layouts


def smoke_spec():
    """The generated set's spec of smoke.yaml: the toy videos every layout is made from."""
    from svar.datasets.synthetic import SyntheticSpec, spec_classes

    s = yaml.safe_load(SMOKE.read_text())["dataset"]["synthetic"]
    return SyntheticSpec(classes=spec_classes(s.pop("classes")), **s)


def _train_test(generated: Path) -> tuple[list[str], list[str], list[str]]:
    """(classes, training videos, test videos) of the generated set's split 1, as `Class/file`."""
    splits = generated / "splits"
    classes = [line.split()[1] for line in (splits / "classInd.txt").read_text().splitlines() if line.strip()]
    train = [line.split()[0] for line in (splits / "trainlist01.txt").read_text().splitlines() if line.strip()]
    test = [line.strip() for line in (splits / "testlist01.txt").read_text().splitlines() if line.strip()]
    return classes, train, test


def _group(rel: str) -> int:
    """The group of a UCF101-style file name (v_<Class>_g<GG>_c<CC>.avi)."""
    return int(rel.rsplit("_g", 1)[1][:2])


def _test_groups(k: int, groups: int) -> set[int]:
    """Split k's test groups: split 1's are the generated set's (group 1); splits 2 and 3 rotate
    them, as UCF101's three splits rotate theirs."""
    return {1 + (k - 1) % groups}


def ucf101_extracted(generated: Path, out: Path, groups: int) -> Path:
    """UCF101 as its two archives extract: UCF-101/<Class>/v_*.avi and ucfTrainTestlist/ with
    classInd.txt and the three splits' trainlist0k.txt (`Class/file label`) and testlist0k.txt."""
    classes, train, test = _train_test(generated)
    label = {c: i for i, c in enumerate(classes, 1)}
    for rel in train + test:
        (out / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated / "videos" / rel, out / "UCF-101" / rel)
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for c, i in label.items()))  # CRLF, as UCF101's
    everything = sorted(train + test)
    for k in (1, 2, 3):
        held = _test_groups(k, groups)
        (lists / f"trainlist0{k}.txt").write_text("".join(f"{r} {label[r.split('/')[0]]}\r\n" for r in everything
                                                          if _group(r) not in held))
        (lists / f"testlist0{k}.txt").write_text("".join(f"{r}\r\n" for r in everything if _group(r) in held))
    return out


def hmdb51_extracted(generated: Path, out: Path, groups: int) -> Path:
    """HMDB51 as its archives extract (the inner RARs unpacked): hmdb51_org/<class>/<video>.avi
    and testTrainMulti_7030_splits/<class>_test_split<k>.txt with `<video>.avi <0|1|2>` lines (1
    train, 2 test, 0 unused: the last training video of each class is unused in every split)."""
    classes, train, test = _train_test(generated)
    everything = sorted(train + test)
    for rel in everything:
        (out / "hmdb51_org" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated / "videos" / rel, out / "hmdb51_org" / rel)
    lists = out / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for k in (1, 2, 3):
        held = _test_groups(k, groups)
        for cls in classes:
            mine = [r for r in everything if r.split("/")[0] == cls]
            unused = [r for r in mine if _group(r) not in held][-1]
            marks = {r: ("2" if _group(r) in held else "0" if r == unused else "1") for r in mine}
            (lists / f"{cls}_test_split{k}.txt").write_text("".join(f"{r.split('/')[1]} {m} \n"
                                                                    for r, m in marks.items()))
    return out


def user_folder(generated: Path, out: Path) -> Path:
    """A user's folder in UCF101's layout (videos/<Class>/<file>, splits/), split 1 only."""
    shutil.copytree(generated / "videos", out / "videos")
    shutil.copytree(generated / "splits", out / "splits")
    return out


def user_csv(generated: Path, out: Path) -> Path:
    """A user's CSV (path,label,split), the videos in one flat folder beside it, paths relative."""
    classes, train, test = _train_test(generated)
    (out / "clips").mkdir(parents=True)
    rows = []
    for rel, split in [(r, "train") for r in train] + [(r, "test") for r in test]:
        cls, name = rel.split("/")
        shutil.copyfile(generated / "videos" / rel, out / "clips" / name)
        rows.append({"path": f"clips/{name}", "label": cls, "split": split})
    with open(out / "videos.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return out / "videos.csv"


def make_layouts(folder: Path) -> dict[str, Path]:
    """The toy videos of smoke.yaml's spec, generated once, in every layout but `generated` (a
    generated config makes its own set): {layout: the path its site overlay names}."""
    from svar.datasets.synthetic import generate

    spec = smoke_spec()
    generated = generate(folder / "generated", spec)
    return {
        "ucf101": ucf101_extracted(generated, folder / "ucf101", spec.groups),
        "hmdb51": hmdb51_extracted(generated, folder / "hmdb51", spec.groups),
        "user_folder": user_folder(generated, folder / "user_folder"),
        "user_csv": user_csv(generated, folder / "user_csv"),
    }
