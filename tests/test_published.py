"""The published-results table (svar/data/published_results.csv): its schema, its sources, which
rows the report draws beside our runs, and every difference in protocol it prints beside each.

Runs are synthesised as svar.evaluate writes their metrics.json (tests/test_report.py's write_run),
then given the protocol a test needs: student, initial weights, clips, test views, split."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from svar.aggregate import collect
from svar.atomic import write_csv
from svar.report import make_report
from svar.report.protocol import (BACKBONES, PRETRAINING_WORDS, RunProtocol, clip_model_label, differences,
                                  run_protocol, table_protocols)
from svar.report.published import (PUBLISHED_CSV, PUBLISHED_SCHEMA, PublishedResultsError, comparable_published,
                                   load_published, published_beside)
from tests.test_report import write_run

LTG_LISTS = "published videossl lists: ucf101_train_10_percent_labeled_split_1_rawframes.txt (sha256 0123456789ab)"


def set_protocol(path, arch="r3d_18", init="scratch", frames=16, size=112, views="3 clips × 1 crop",
                 convention=None, list_source=None, shots=None):
    """Give a run written by write_run another protocol, in the fields svar.evaluate writes it to."""
    run = json.loads(path.read_text())
    provenance = run["provenance"]
    provenance["student"] = arch
    provenance["options"]["student"]["arch"] = arch
    provenance["student_init"] = init
    provenance["clips"] = {**provenance["clips"], "frames": frames, "size": size}
    provenance["views"] = views
    if convention is not None:
        run["split"]["convention"] = provenance["split_convention"] = convention
    if list_source is not None:
        run["split"]["list_source"] = list_source
    if shots is not None:
        run["shots"] = shots
    path.write_text(json.dumps(run))
    return path


def runs_tree(root, dataset, fractions, method="supervised", seeds=(0, 1), **protocol):
    """metrics.csv and the runs' metrics.json of one method, every run given `protocol`."""
    files = [set_protocol(write_run(root / "runs", dataset, method, fraction, seed, 0.6), **protocol)
             for fraction in fractions for seed in seeds]
    write_csv(root / "metrics.csv", collect(files))
    return root / "metrics.csv", files


def published_table(markdown: str, dataset: str) -> dict[tuple[str, str], list[str]]:
    """The published rows of a report's summary.md, keyed by (method, labels), as cell lists."""
    section = markdown.split(f"### Published results on {dataset}")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return {(c[0], c[7]): c for c in cells}


# --------------------------------------------------------------------------- the table and its schema


def test_every_published_row_validates_names_its_source_and_speaks_the_runs_vocabulary():
    from jsonschema import Draft202012Validator

    schema = json.loads(PUBLISHED_SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    assert all(spec.get("description") for spec in schema["properties"].values()), "a column without a description"
    published = load_published()
    assert len(published) == len(pd.read_csv(PUBLISHED_CSV))
    assert published["source"].str.strip().str.len().gt(0).all()
    assert set(published["split_convention"]) == set(schema["properties"]["split_convention"]["enum"])
    assert set(published["dataset"]) == {"ucf101", "hmdb51"}
    # exactly one of label_fraction and shots (zero-shot: label_fraction 0)
    assert (published["label_fraction"].isna() != published["shots"].isna()).all()
    assert published["top1"].between(0, 100).all()
    assert not published.duplicated(["method", "dataset", "label_fraction", "shots", "backbone"]).any()
    assert all(p.startswith(PRETRAINING_WORDS) for p in published["pretraining"]), \
        sorted(set(p for p in published["pretraining"] if not p.startswith(PRETRAINING_WORDS)))
    # a network svar has is named as svar names it, so a run with the same network shows no difference
    backbones = dict(zip(published["method"], published["backbone"]))
    assert backbones["LTG"] == BACKBONES["r3d_18"] and backbones["SVFormer-B"] == BACKBONES["vit_b16_divided"]
    assert backbones["ViFi-CLIP"] == clip_model_label("ViT-B-16") == "ViT-B/16 (CLIP)"
    assert backbones["CLIP zero-shot"] == clip_model_label("ViT-L-14-336") == "ViT-L/14@336px (CLIP)"


def test_the_corrected_rows_say_what_is_in_doubt():
    published = load_published().set_index(["method", "dataset", "label_fraction"], drop=False)
    small = published[published["method"] == "SVFormer-S"]
    assert (small["pretraining"] == "ImageNet (unconfirmed)").all()
    assert small["note"].str.contains("issue #6").all()
    clip = published.loc[("CLIP zero-shot", "ucf101", 0.0)]
    assert clip["backbone"] == "ViT-L/14@336px (CLIP)"
    assert "69.6" in clip["note"] and "mean of top-1 and top-5" in clip["note"]


@pytest.mark.parametrize("row, field, value, field_named", [
    (3, "source", "", "source"),                                     # every number names where it was read
    (5, "split_convention", "random", "split_convention"),           # a convention no published list follows
    (2, "top1", "eighty", "top1"),
    (7, "label_fraction", "10", "label_fraction"),                   # a fraction is 0..1
    (9, "clip", "8 frames", "clip"),                                 # FRAMESxSIZE
    (4, "views", "", "views"),                                       # required
    (1, "shots", "4", "label_fraction, shots"),                      # a fraction and K at once
    (1, "label_fraction", "", "label_fraction, shots"),              # neither
])
def test_a_broken_published_row_is_named_with_its_row_and_field(tmp_path, row, field, value, field_named):
    table = pd.read_csv(PUBLISHED_CSV, dtype=str, keep_default_na=False)
    table.loc[row - 1, field] = value
    broken = tmp_path / "published.csv"
    table.to_csv(broken, index=False)
    with pytest.raises(PublishedResultsError) as error:
        load_published(broken)
    message = str(error.value)
    assert f"row {row} (line {row + 1}), field '{field_named}'" in message
    assert message.count("\n  ") == 1, "only the broken row is reported"
    if field_named == "label_fraction, shots":
        assert "give exactly one of label_fraction or shots" in message
        assert ("gives label_fraction and shots" if value else "gives neither") in message


# --------------------------------------------------------------------------- our runs' protocol


def test_every_student_arch_has_a_backbone_name_in_the_published_vocabulary():
    from svar.students import STUDENTS

    missing = sorted(set(name for name, _ in STUDENTS.items()) - set(BACKBONES))
    assert not missing, f"add these student archs to svar.report.protocol.BACKBONES: {missing}"


def test_a_runs_protocol_is_said_in_the_published_vocabulary(tmp_path):
    student = set_protocol(write_run(tmp_path / "a", "ucf101", "fixmatch", 0.05, 0, 0.5), arch="r3d_18",
                           init="imagenet: torchvision ResNet18_Weights.IMAGENET1K_V1 inflated into r3d_18 (sha256 1)",
                           frames=8, size=224, views="10 clips × 3 crops", convention="videossl",
                           list_source="published videossl lists: a.txt (sha256 0123456789ab)")
    teacher = write_run(tmp_path / "b", "ucf101", "clip_zeroshot", 0.05, 1, 0.5, teacher_model="ViT-L-14-336")
    assert run_protocol(json.loads(student.read_text())) == RunProtocol(
        "fixmatch", 0.05, None, "videossl", "3D-ResNet-18", "ImageNet", "8x224", "10x3",
        "published videossl lists: a.txt (sha256 0123456789ab)")
    zero_shot = run_protocol(json.loads(teacher.read_text()))
    assert (zero_shot.backbone, zero_shot.pretraining) == ("ViT-L/14@336px (CLIP)", "CLIP")
    assert zero_shot.list_source == "balanced draw with each run's seed"  # every seed the same protocol
    finetuned = json.loads(student.read_text())
    finetuned["provenance"].update(student="clip:ViT-B-16",
                                   student_init="the teacher's weights (ViT-B-16 / openai), zero-shot head")
    clip_finetune = run_protocol(finetuned)
    assert (clip_finetune.backbone, clip_finetune.pretraining) == ("ViT-B/16 (CLIP)", "CLIP")


def test_a_run_set_up_as_the_paper_describes_shows_none_and_the_others_list_each_difference(tmp_path):
    # LTG on UCF101 10%: 3D-ResNet-18 from scratch, 8 frames at 224 px, 10 clips × 3 crops, VideoSSL's lists
    metrics_csv, files = runs_tree(tmp_path, "ucf101", (0.1, 0.2), arch="r3d_18", init="scratch", frames=8,
                                   size=224, views="10 clips × 3 crops", convention="videossl",
                                   list_source=LTG_LISTS)
    paths = make_report(metrics_csv, files, tmp_path / "report")
    rows = published_table(paths["summary_md"].read_text(), "ucf101")
    assert rows[("LTG", "10%")][9] == "none"
    # no run at 5%: VideoSSL's number is drawn for context, its labels and unstated protocol listed
    assert rows[("VideoSSL", "5%")][9] == (
        "pretraining: unstated vs none (trained from scratch); clip: unstated vs 8x224; views: unstated vs 10x3; "
        "labels: 5% vs 10% (supervised), 20% (supervised)")
    assert not any(method.startswith(("SVFormer", "SeFAR")) for method, _ in rows)  # not VideoSSL's lists
    assert ("CLIP zero-shot", "0% (zero-shot)") in rows  # no labels, no split: always drawn
    page = paths["html"].read_text()
    assert "<th>Differences from our runs</th>" in page and "<td>none</td>" in page
    latex = paths["summary_tex"].read_text()
    assert "Differences from our runs" in latex and "LTG & CVPR 2022 & 3D-ResNet-18" in latex
    ltg_line = next(line for line in latex.splitlines() if line.startswith("LTG & CVPR 2022") and "10\\%" in line)
    assert ltg_line.endswith("& none \\\\")


def test_every_difference_from_the_runs_beside_a_row_is_listed_with_their_methods(tmp_path):
    files = [set_protocol(write_run(tmp_path / "runs", "ucf101", "supervised", 0.1, 0, 0.6), arch="r2plus1d_18",
                          init="kinetics400: torchvision R2Plus1D_18_Weights.KINETICS400_V1 (sha256 1)",
                          convention="random"),
             set_protocol(write_run(tmp_path / "runs", "ucf101", "fixmatch", 0.1, 0, 0.6), convention="random")]
    write_csv(tmp_path / "metrics.csv", collect(files))
    paths = make_report(tmp_path / "metrics.csv", files, tmp_path / "report")
    rows = published_table(paths["summary_md"].read_text(), "ucf101")
    assert rows[("LTG", "10%")][9] == (
        "backbone: 3D-ResNet-18 vs R(2+1)D-18 (supervised); "
        "pretraining: none (trained from scratch) vs Kinetics-400 (supervised); clip: 8x224 vs 16x112; "
        "views: 10x3 vs 3x1; lists: VideoSSL lists, lambert-x/video-semisup data/ucf101/videossl_splits vs "
        "random draw with each run's seed")


def test_a_zero_shot_row_is_compared_with_the_zero_shot_teacher_without_lists(tmp_path):
    protocols = table_protocols([json.loads(write_run(tmp_path / "r", "ucf101", m, 0.1, 0, 0.6).read_text())
                                 for m in ("clip_zeroshot", "supervised")])
    clip = load_published().query("method == 'CLIP zero-shot'").to_dict("records")[0]
    assert differences(clip, protocols, "ucf101") == (
        "backbone: ViT-L/14@336px (CLIP) vs ViT-B/32 (CLIP); clip: unstated vs the teacher's stored video features; "
        "views: unstated vs the teacher's stored video features")


# --------------------------------------------------------------------------- K-shot rows


def k_shot_runs(tmp_path, dataset, convention, k, list_source=None):
    """Runs at K labeled videos a class, as K-shot runs record it: `shots` K, no fraction."""
    files = [set_protocol(write_run(tmp_path / f"{dataset}-{convention}-{k}", dataset, "clip_finetune", 0.1, seed,
                                    0.6), arch="clip:ViT-B-16",
                          init="the teacher's weights (ViT-B-16 / openai), zero-shot head", frames=32, size=224,
                          views="1 clip × 1 crop", convention=convention, list_source=list_source, shots=k)
             for seed in (0, 1)]
    runs = []
    for path in files:
        run = json.loads(path.read_text())
        run["fraction"] = math.nan
        runs.append(run)
    return runs


@pytest.mark.parametrize("with_shots_column", [True, False])
@pytest.mark.parametrize("dataset, convention, k, drawn", [
    ("hmdb51", "vifi", 4, {"ViFi-CLIP", "TC-CLIP"}),       # ViFi-CLIP's files, which TC-CLIP ships too
    ("hmdb51", "balanced", 4, {"ViFi-CLIP", "TC-CLIP"}),   # K a class drawn here: the same rule
    ("hmdb51", "random", 4, set()),                         # not K a class
    ("ucf101", "svformer", 4, set()),                       # SVFormer's lists are fractions, not K-shot lists
])
def test_a_k_shot_row_is_drawn_only_beside_runs_at_its_k_of_a_comparable_convention(tmp_path, with_shots_column,
                                                                                      dataset, convention, k, drawn):
    runs = k_shot_runs(tmp_path, dataset, convention, k)
    metrics = pd.DataFrame({"dataset": dataset, "method": ["clip_finetune", "clip_finetune", "supervised"],
                            "fraction": [math.nan, math.nan, 1.0], "convention": convention, "seed": [0, 1, 0]})
    if with_shots_column:  # as svar aggregate writes it beside fraction runs: K, or missing
        metrics["shots"] = pd.array([k, k, None], dtype="Int64")
    kept = comparable_published(load_published(), metrics, runs)
    k_shot = kept[kept["shots"].notna()]
    assert set(k_shot["method"]) == drawn  # X-CLIP's lists were not released: never like for like
    assert set(k_shot["shots"]) <= {k} and set(k_shot["dataset"]) <= {dataset}


def test_a_k_shot_run_as_vifi_clip_ran_differs_from_tc_clip_in_clip_and_views(tmp_path):
    runs = k_shot_runs(tmp_path, "ucf101", "vifi", 8, list_source="published vifi lists: train1_few_shot_8.txt")
    rows = published_beside(load_published().query("shots == 8 and dataset == 'ucf101'"), "ucf101",
                            table_protocols(runs)).set_index("method")
    assert rows.loc["ViFi-CLIP", "labels"] == "8 shots"
    assert rows.loc["ViFi-CLIP", "differences"] == "none"
    assert rows.loc["TC-CLIP", "differences"] == "clip: 16x224 vs 32x224; views: 2x1 vs 1x1"
    assert rows.loc["X-CLIP", "differences"].startswith("views: unstated vs 1x1; lists: not released")
