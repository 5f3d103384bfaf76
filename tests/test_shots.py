"""The K-shot axis (`shots`): K labeled videos a class, drawn balanced with the seed or imported
from ViFi-CLIP's lists (`train1_few_shot_<K>.txt`, `val1.txt`: `<video file> <0-based label>`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest


def write_vifi_lists(manifest, folder, shots=(1, 2), newline="\n"):
    """ViFi-CLIP's K-shot lists for the tiny set, as its datasets_splits/<dataset>_splits/ ship
    them: the file name and a 0-based label a line, K a class (the first K of each class's pool)."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = manifest[manifest["split1"] != "test"].sort_values("video_id")
    test = manifest[manifest["split1"] == "test"].sort_values("video_id")

    def lines(rows):
        return "".join(f"{r.video_id}.avi {r.label}{newline}" for r in rows.itertuples())

    labeled = {}
    for k in shots:
        rows = pool.groupby("label").head(k)
        (folder / f"train1_few_shot_{k}.txt").write_bytes(lines(rows).encode())
        labeled[k] = set(rows["video_id"])
    (folder / "val1.txt").write_bytes(lines(test).encode())
    return labeled


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_vifi_k_shot_lists_import_to_k_videos_a_class(tiny_manifest, tmp_path, newline):
    from svar.splits import build_split, split_info

    manifest, _ = tiny_manifest
    labeled = write_vifi_lists(manifest, tmp_path / "ucf_splits", newline=newline)
    classes = manifest["label"].nunique()
    for k in (1, 2):
        table = build_split(manifest, None, 0, convention="vifi", lists_dir=tmp_path / "ucf_splits",
                            val_per_class=0, shots=k)
        assert (table["role"] == "labeled").sum() == k * classes
        assert set(table.loc[table.role == "labeled", "video_id"]) == labeled[k]
        assert table[table.role == "labeled"].groupby("label").size().eq(k).all()
        # the test list is val1.txt; the rest of the pool is unlabeled
        assert set(table.loc[table.role == "test", "video_id"]) == set(manifest.loc[manifest.split1 == "test",
                                                                                    "video_id"])
        assert (table["role"] == "unlabeled").sum() == (manifest["split1"] != "test").sum() - k * classes
        info = split_info(table, None, 0, 1, "vifi", "all_but_test", 0, "ucf101", shots=k)
        assert info["shots"] == k and info["comparable_with"] == ["vifi"]
        assert "train1_few_shot_" in info["list_source"] and info["seed_varies"].startswith("initialisation only")


def test_a_malformed_vifi_line_names_file_and_line(tiny_manifest, tmp_path):
    from svar.literature import LiteratureListError
    from svar.splits import build_split

    manifest, _ = tiny_manifest
    write_vifi_lists(manifest, tmp_path / "lists")
    path = tmp_path / "lists" / "train1_few_shot_2.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(" ", ",")  # "v_x.avi,3": no label field
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LiteratureListError, match=rf"{path}:3: expected 'video_file.avi label_index'"):
        build_split(manifest, None, 0, convention="vifi", lists_dir=tmp_path / "lists", shots=2)


def test_a_balanced_k_shot_draw_labels_k_a_class_and_depends_on_the_seed(tiny_manifest):
    from svar.splits import build_split, labeled_fraction, make_split

    manifest, _ = tiny_manifest
    classes = manifest["label"].nunique()
    a = build_split(manifest, None, 0, shots=2, val_per_class=1)
    b = build_split(manifest, None, 1, shots=2, val_per_class=1)
    for table in (a, b):
        assert table[table.role == "labeled"].groupby("label").size().eq(2).all()
        assert (table["role"] == "labeled").sum() == 2 * classes
    assert set(a.loc[a.role == "labeled", "video_id"]) != set(b.loc[b.role == "labeled", "video_id"])
    pd.testing.assert_frame_equal(a, build_split(manifest, None, 0, shots=2, val_per_class=1))
    # the fraction K shots amount to is the same for every seed
    assert labeled_fraction(a) == labeled_fraction(b) == 2 * classes / (a["role"] != "test").sum()
    # a fraction's draw is not changed by the axis (its seed takes no K)
    fraction = make_split(manifest, 0.5, 0)
    assert fraction.equals(make_split(manifest, 0.5, 0, shots=None))


def test_k_shots_are_refused_where_a_convention_labels_a_fraction(tiny_manifest, tmp_path):
    from svar.config import load_workflow_config
    from svar.input_checks import budget_problems
    from svar.splits import build_split

    manifest, _ = tiny_manifest
    with pytest.raises(ValueError, match="random draws a fraction of the pool"):
        build_split(manifest, None, 0, convention="random", shots=2)
    write_vifi_lists(manifest, tmp_path / "lists")
    with pytest.raises(ValueError, match="its lists are K-shot lists"):
        build_split(manifest, 0.5, 0, convention="vifi", lists_dir=tmp_path / "lists")
    config = load_workflow_config()
    assert budget_problems(config) == []
    assert "both empty" in budget_problems({**config, "fractions": []})[0]
    random = {**config, "shots": [2], "dataset": {**config["dataset"], "split_convention": "random"}}
    assert "labels a fraction of the pool" in budget_problems(random)[0]
    vifi = {**config, "dataset": {**config["dataset"], "split_convention": "vifi"}}
    assert "set fractions: []" in budget_problems(vifi)[0]
    assert budget_problems({**vifi, "fractions": [], "shots": [2]}) == []


def test_budget_tags_round_trip_and_name_the_run_folders():
    from svar.config import budget_flags, budget_tag, budget_tags, parse_budget

    config = {"fractions": [0.01, 1.0], "shots": [2, 16]}
    assert budget_tags(config) == ["fraction0.01", "fraction1", "shots2", "shots16"]
    assert [parse_budget(t) for t in budget_tags(config)] == [("fraction", 0.01), ("fraction", 1.0),
                                                             ("shots", 2), ("shots", 16)]
    assert budget_flags("shots4") == "--shots 4" and budget_flags("fraction0.05") == "--fraction 0.05"
    with pytest.raises(ValueError, match="not a label budget"):
        parse_budget("shotsfour")
    with pytest.raises(ValueError):
        budget_tag(fraction=0.1, shots=2)


def test_k_shot_runs_have_their_own_column_in_the_tables(tmp_path):
    from svar.aggregate import collect, summarise
    from svar.report.published import load_published
    from svar.report.tables import paper_tables, to_markdown

    def run(method, seed, top1, shots=None):
        path = tmp_path / f"{method}_{shots}_{seed}.json"
        n = 10
        right = int(round(top1 * n))
        record = {"dataset": "ucf101", "method": method, "fraction": 0.1 if shots is None else 0.0212,
                  "seed": seed, "top1": right / n, "top5": None, "mean_class": right / n,
                  "test_labels": [0] * n, "test_predictions": [0] * right + [1] * (n - right),
                  "split": {"convention": "balanced", "list_source": f"drawn with seed {seed}",
                            "seed_varies": "split and initialisation"}}
        if shots is not None:
            record["shots"] = shots
        path.write_text(json.dumps(record))
        return path

    files = [run("supervised", 0, 0.5), run("supervised", 1, 0.6), run("supervised", 0, 0.3, shots=2),
             run("supervised", 1, 0.4, shots=2)]
    metrics = collect(files)
    assert list(metrics.columns[:5]) == ["dataset", "teacher", "method", "fraction", "shots"]
    summary = summarise(metrics)
    top1 = summary[summary.metric == "top1"].set_index("fraction")
    assert top1.loc[0.0212, "shots"] == 2 and pd.isna(top1.loc[0.1, "shots"])
    assert top1.loc[0.0212, "mean"] == pytest.approx(0.35)
    (table,) = paper_tables(summary, metrics)
    assert table.budget(0.0212) == "2 shots (2.1%)" and table.budget(0.1) == "10%"
    assert "2 shots (2.1%) Top-1" in to_markdown([table], load_published().iloc[:0], None)
    # a table of fraction runs alone has no shots column: its bytes are those before the axis
    assert "shots" not in collect(files[:2]).columns
