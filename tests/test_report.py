"""The paper report: summary numbers, LaTeX form, published-results table, and the full output set.

The results trees are synthesised here (metrics.json + train_curve.csv per run, as
svar.evaluate and svar.trainer write them), so the tests need neither a benchmark run nor a
GPU and know every number in advance.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from svar.aggregate import collect, summarise
from svar.atomic import write_csv
from svar.report import make_report
from svar.report.figures import FIGURES, plot_training_curves, readme_table
from svar.report.provenance import choose_run, load_runs
from svar.report.published import load_published
from svar.report.tables import paper_tables, summary_frame, to_latex, to_markdown

CLASSES = ["ApplyEyeMakeup", "Bowling", "JumpRope", "Yo_Yo"]
TEACHER_ONLY = "clip_zeroshot"
# mean top-1 each method is drawn around, per fraction: distill_pl wins at the smallest fraction
ACCURACY = {"clip_zeroshot": {0.1: 0.5, 1.0: 0.5}, "distill_pl": {0.1: 0.75, 1.0: 0.9},
            "supervised": {0.1: 0.3, 1.0: 0.85}}


def write_run(runs_dir, dataset, method, fraction, seed, accuracy, random_teacher=False, convention="balanced",
              teacher_model="ViT-B-32"):
    """One run folder as svar writes it: metrics.json (with provenance) and train_curve.csv."""
    rng = np.random.default_rng([seed, int(fraction * 100), len(method)])
    labels = np.repeat(np.arange(len(CLASSES)), 10)
    correct = rng.random(len(labels)) < accuracy
    wrong = (labels + rng.integers(1, len(CLASSES), len(labels))) % len(CLASSES)
    predictions = np.where(correct, labels, wrong)
    per_class = {name: float((predictions[labels == c] == c).mean()) for c, name in enumerate(CLASSES)}
    teacher_only = method == TEACHER_ONLY
    run = {
        "dataset": dataset, "method": method, "fraction": fraction, "seed": seed,
        "top1": float((predictions == labels).mean()), "top5": 1.0,
        "mean_class": float(np.mean(list(per_class.values()))), "per_class": per_class,
        "test_labels": labels.tolist(), "test_predictions": predictions.tolist(),
        "accuracy_of": "final model (no test-set model selection)",
        "split": {"convention": convention, "list_source": f"drawn with seed {seed}",
                  "seed_varies": "split and initialisation"},
        "teacher_random_weights": random_teacher,
        "provenance": {
            "teacher_model": teacher_model,
            "teacher_weights": "random" if random_teacher else "openai",
            "student": "none (teacher only)" if teacher_only else "r2plus1d_18",
            "student_init": None if teacher_only else "kinetics400: torchvision R2Plus1D_18_Weights.KINETICS400_V1",
            # what each method reads (svar.methods.options_for): a teacher-only head no train section,
            # supervised no unlabeled_ratio
            "options": ({} if teacher_only else
                        {"train": {"steps": 20, "lr": 0.003, "batch_size": 8,
                                   **({"unlabeled_ratio": 7} if method != "supervised" else {})},
                         "student": {"arch": "r2plus1d_18"}}),
            "evaluate": None if teacher_only else {"clips": 3, "batch_size": 64, "device": "auto"},
            "views": "the teacher's stored video features" if teacher_only else "3 clips × 1 crop",
            "clips": None if teacher_only else {"sampling": "dense", "frames": 16, "stride": 4, "size": 112,
                                                 "cache_frames": 16, "cache_size": [128, 171]},
            "split_convention": convention,
            "decoders": {"av": "14.0.0", "decord": "3.4.0"},
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
        },
    }
    folder = runs_dir / method / f"fraction{fraction:g}_seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(run))
    steps = np.arange(0 if teacher_only else 20)
    curve = pd.DataFrame({"step": steps, "lr": 0.003, "loss": 2.0 / (1 + steps) + 0.01 * seed,
                          "ce": 1.5 / (1 + steps)})
    pseudo = pd.DataFrame(columns=["class", "seen", "used", "correct", "coverage", "accuracy"])
    if method == "distill_pl" and fraction < 1:  # it trained on pseudo-labels: the diagnostics as svar.trainer writes
        curve["pl_mask"], curve["pl_accuracy"] = 0.5 + 0.02 * steps, 0.6 + 0.01 * seed
        seen = np.full(len(CLASSES), 8)
        used = np.array([8, 4, 2, 0])
        correct = np.array([8, 2, 1, 0]) if seed == 0 else np.array([6, 4, 0, 0])
        pseudo = pd.DataFrame({"class": CLASSES, "seen": seen, "used": used, "correct": correct,
                               "coverage": used / seen, "accuracy": correct / np.where(used > 0, used, np.nan)})
    curve[["step", "loss"] if teacher_only else list(curve.columns)].to_csv(folder / "train_curve.csv", index=False)
    pseudo.to_csv(folder / "pseudo_labels.csv", index=False)
    return folder / "metrics.json"


def write_results_tree(root, dataset="synthetic", methods=tuple(ACCURACY), random_teacher=False,
                       convention="balanced", teacher_model="ViT-B-32", seeds=(0, 1)):
    """A results tree (runs/ and metrics.csv) like `svar aggregate` leaves it; returns (metrics.csv, the
    runs' metrics.json files)."""
    runs_dir = root / "runs"
    files = [write_run(runs_dir, dataset, method, fraction, seed, ACCURACY[method][fraction], random_teacher,
                       convention, teacher_model)
             for method in methods for fraction in (0.1, 1.0) for seed in seeds]
    write_csv(root / "metrics.csv", collect(files))
    return root / "metrics.csv", files


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    metrics_csv, run_files = write_results_tree(root)
    paths = make_report(metrics_csv, run_files, root / "report")
    return {"metrics_csv": metrics_csv, "run_files": run_files, "paths": paths}


# --------------------------------------------------------------------------- summary numbers


def test_summary_mean_and_std_match_a_hand_computation(tmp_path):
    rows = []
    for seed, (top1, top5, mean_class) in enumerate([(0.50, 0.9, 0.4), (0.60, 0.9, 0.5), (0.70, 0.9, 0.9)]):
        for metric, value in (("top1", top1), ("top5", top5), ("mean_class", mean_class)):
            rows.append({"dataset": "d", "method": "m_a", "fraction": 0.1, "seed": seed, "metric": metric,
                         "value": value})
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    summary = summarise(pd.read_csv(tmp_path / "metrics.csv"))

    row = summary_frame(summary).iloc[0]
    # sample std over seeds: top-1 deviations ±0.1 → sqrt(0.02 / 2) = 0.1
    assert row["top1_mean"] == pytest.approx(60.0) and row["top1_std"] == pytest.approx(10.0)
    assert row["top5_mean"] == pytest.approx(90.0) and row["top5_std"] == pytest.approx(0.0)
    # mean-class 0.4, 0.5, 0.9: mean 0.6, deviations -0.2, -0.1, 0.3 → sqrt(0.14 / 2)
    assert row["mean_class_mean"] == pytest.approx(60.0)
    assert row["mean_class_std"] == pytest.approx(100 * (0.14 / 2) ** 0.5, abs=1e-3)
    assert row["n_seeds"] == 3
    markdown = to_markdown(paper_tables(summary), load_published(), None)
    assert "| m_a | **60.0 ± 10.0** | **90.0 ± 0.0** | **60.0 ± 26.5** |" in markdown


def test_summary_csv_has_one_row_per_method_and_fraction(report):
    table = pd.read_csv(report["paths"]["summary_csv"])
    assert len(table) == len(ACCURACY) * 2
    assert {"top1_mean", "top1_std", "top5_mean", "mean_class_std", "n_seeds"} <= set(table.columns)
    assert table["top1_mean"].between(0, 100).all()


# --------------------------------------------------------------------------- LaTeX


def assert_balanced_braces(text: str) -> None:
    depth = 0
    for match in re.finditer(r"\\.|[{}]", text):  # skip escapes such as \{ \} \\ \%
        token = match.group()
        depth += token == "{"
        depth -= token == "}"
        assert depth >= 0, f"unbalanced '}}' at {match.start()}"
    assert depth == 0


def test_latex_table_is_well_formed(report):
    tex = report["paths"]["summary_tex"].read_text()
    assert_balanced_braces(tex)
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env
    assert not stack
    # the summary table, then its paired tests (svar.significance)
    assert tex.count("\\begin{table}") == tex.count("\\begin{tabular}") == 2
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 2, rule
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == len(ACCURACY)
    assert [line.split(" & ")[0] for line in body] == ["clip\\_zeroshot", "distill\\_pl", "supervised"]
    assert all(line.endswith("\\\\") and line.count("&") == 2 * 3 for line in body)
    assert not re.search(r"(?<!\\)_", tex), "unescaped underscore"


def test_latex_escapes_the_warning_and_dataset_name():
    summary = pd.DataFrame([{"dataset": "my_data", "method": "a&b", "fraction": 0.5, "metric": m, "mean": 0.5,
                             "std": 0.1, "n_seeds": 2} for m in ("top1", "top5", "mean_class")])
    tex = to_latex(paper_tables(summary), "50% of runs_x")
    assert_balanced_braces(tex)
    assert "a\\&b" in tex and "my\\_data" in tex and "50\\% of runs\\_x" in tex
    assert "\\label{tab:my-data}" in tex


# --------------------------------------------------------------------------- published results


# the table itself, its schema and the differences beside our runs: tests/test_published.py


# --------------------------------------------------------------------------- the whole report


def test_make_report_writes_every_output(report):
    paths = report["paths"]
    figures = {figure.key for _, figure in FIGURES.items()}  # every registered figure
    assert len(figures) == 7
    expected = {"summary_csv", "summary_md", "summary_tex", "significance_csv", "provenance", "html",
                "per_class_analysis"} | figures
    assert set(paths) == expected
    for path in paths.values():
        assert path.exists() and path.stat().st_size > 0, path
    for _, figure in FIGURES.items():
        assert paths[figure.key].name == figure.file
        assert paths[figure.key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(paths["html"].parent.glob(".*.tmp")), "a temporary file was left behind"


def test_html_embeds_the_images_and_the_table_and_needs_no_network(report):
    page = report["paths"]["html"].read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert '<table class="summary"' in page
    for method in ACCURACY:
        assert f"<td>{method}</td>" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", page), "external resource"
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert 'id="provenance"' in page


def test_provenance_names_teacher_student_config_split_decoder_commit(report):
    provenance = json.loads(report["paths"]["provenance"].read_text())
    assert provenance["teacher_model"] == ["ViT-B-32"] and provenance["teacher_weights"] == ["openai"]
    assert provenance["teacher_random_weights"] is False and "WARNING" not in provenance
    # the student with its initialisation: scratch or which weights
    student = "r2plus1d_18 (kinetics400: torchvision R2Plus1D_18_Weights.KINETICS400_V1)"
    assert provenance["student"] == {"clip_zeroshot": ["none (teacher only)"], "distill_pl": [student],
                                     "supervised": [student]}
    assert provenance["method_config"]["distill_pl"][0]["train"]["steps"] == 20
    assert provenance["evaluation"]["distill_pl"] == [{"clips": 3, "batch_size": 64, "device": "auto"}]
    assert provenance["evaluation"]["clip_zeroshot"] == [None]
    assert provenance["split_convention"] == ["balanced"]
    assert provenance["decoders"] == [{"av": "14.0.0", "decord": "3.4.0"}]
    assert provenance["git_commit"] == ["0123456789abcdef0123456789abcdef01234567"]
    assert provenance["final_model_accuracy"] is True
    assert provenance["per_class_and_confusion_run"]["method"] == "distill_pl"


def test_default_run_is_the_best_method_at_the_smallest_fraction_seed_0(report):
    metrics = pd.read_csv(report["metrics_csv"])
    assert choose_run(metrics) == ("synthetic", "distill_pl", 0.1, 0)
    assert choose_run(metrics, "supervised/1.0/1") == ("synthetic", "supervised", 1.0, 1)
    with pytest.raises(ValueError, match="not in metrics.csv"):
        choose_run(metrics, "supervised/0.5/0")
    with pytest.raises(ValueError, match="method/fraction/seed"):
        choose_run(metrics, "supervised/1.0")


def test_training_curves_skip_teacher_only_runs(report, tmp_path):
    runs = load_runs(report["run_files"], pd.read_csv(report["metrics_csv"]))
    assert plot_training_curves(runs, "synthetic", 0.1, tmp_path / "curves.png") == ["distill_pl", "supervised"]
    teacher_only = [r for r in runs if r["method"] == TEACHER_ONLY]
    assert plot_training_curves(teacher_only, "synthetic", 0.1, tmp_path / "none.png") == []
    assert (tmp_path / "none.png").stat().st_size > 0


def test_random_teacher_and_published_rows_on_a_literature_dataset(tmp_path):
    metrics_csv, run_files = write_results_tree(tmp_path, dataset="ucf101", methods=("supervised",),
                                               random_teacher=True)
    paths = make_report(metrics_csv, run_files, tmp_path / "report", run="supervised/1.0/0")
    provenance = json.loads(paths["provenance"].read_text())
    assert provenance["teacher_random_weights"] is True and provenance["teacher_weights"] == ["RANDOM"]
    assert "RANDOM" in provenance["WARNING"]
    page = paths["html"].read_text()
    assert 'id="random-teacher-warning"' in page
    assert "TEACHER WEIGHTS ARE RANDOM" in paths["summary_md"].read_text()
    assert "TEACHER WEIGHTS ARE RANDOM" in paths["summary_tex"].read_text()
    markdown = paths["summary_md"].read_text()
    ours, theirs = markdown.split("### Published results on ucf101")
    assert "| supervised |" in ours and "SVFormer-B" in theirs and "| CVPR 2023 |" in theirs
    assert "hmdb51" not in theirs
    assert "Published results on ucf101" in page and "SVFormer-B" in page
    assert provenance["per_class_and_confusion_run"] == {"dataset": "ucf101", "method": "supervised",
                                                         "fraction": 1.0, "seed": 0,
                                                         "title": "ucf101 / supervised / 100% labels / seed 0"}


@pytest.mark.parametrize("convention, drawn, not_drawn", [
    ("balanced", {"SVFormer-B", "SeFAR-B"}, {"LTG"}),      # class-balanced: SVFormer's rule on UCF101
    ("random", {"LTG", "SeFAR-B"}, {"SVFormer-B"}),        # at random: VideoSSL's rule, and SeFAR's own 5% draw
    ("sefar", {"SeFAR-B", "SVFormer-B"}, {"LTG"}),         # SeFAR's lists: its 5%, SVFormer's 1%/10%
])
def test_the_report_draws_a_published_row_only_beside_runs_of_its_convention(tmp_path, convention, drawn,
                                                                               not_drawn):
    metrics_csv, run_files = write_results_tree(tmp_path, dataset="ucf101", methods=("supervised",),
                                               convention=convention)
    paths = make_report(metrics_csv, run_files, tmp_path / "report")
    markdown = paths["summary_md"].read_text()
    ours, theirs = markdown.split("### Published results on ucf101")
    assert f"split convention {convention}; labeled videos drawn with each run's seed" in ours
    table = [line for line in theirs.splitlines() if line.startswith("| ") and "Venue" not in line]
    methods = {line.split(" | ")[0].lstrip("| ") for line in table}
    assert drawn <= methods and not methods & not_drawn
    # every row drawn is of a comparable convention, or zero-shot (no labels: no split)
    from svar.splits import comparable_conventions
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table if not line.startswith("|---")]
    for c in cells:  # columns: method, venue, backbone, pretraining, clip, views, split convention, labels, ...
        if c[7] != "0% (zero-shot)":
            assert c[6] in comparable_conventions("ucf101", convention, float(c[7].rstrip("%")) / 100), c
    assert f"split convention {convention}" in paths["html"].read_text()
    assert f"Split convention {convention}" in paths["summary_tex"].read_text()


def test_runs_of_two_conventions_are_not_one_table(tmp_path):
    files = [write_run(tmp_path / "runs", "ucf101", "supervised", 0.1, 0, 0.5, convention="balanced"),
             write_run(tmp_path / "runs", "ucf101", "supervised", 0.1, 1, 0.5, convention="random")]
    with pytest.raises(ValueError, match=r"ucf101: runs of split conventions \['balanced', 'random'\]"):
        collect(files)


def test_stale_run_folders_beside_the_given_runs_are_not_read(tmp_path):
    metrics_csv, run_files = write_results_tree(tmp_path, methods=("supervised",))
    write_run(tmp_path / "runs", "synthetic", "distill_pl", 0.5, 0, 0.5)  # an old run, no longer in the grid
    methods = {run["method"] for run in load_runs(run_files, pd.read_csv(metrics_csv))}
    assert methods == {"supervised"}
    shutil.rmtree(tmp_path / "runs" / "supervised")
    with pytest.raises(FileNotFoundError, match="metrics.json: no such run's metrics; rule evaluate makes it"):
        load_runs(run_files, pd.read_csv(metrics_csv))


def test_the_report_takes_exactly_the_runs_of_its_table(report):
    """The runs are given, not searched for: one missing, or one the table does not list, is named."""
    metrics = pd.read_csv(report["metrics_csv"])
    files = report["run_files"]
    with pytest.raises(ValueError, match="lists runs with no metrics.json given"):
        load_runs(files[1:], metrics)
    with pytest.raises(ValueError, match="is not in the metrics table"):
        load_runs(files, metrics[metrics["seed"] == 0])


def test_per_class_analysis_pairs_gain_teacher_and_pseudo_labels(report):
    from svar.report.analysis import per_class_analysis

    runs = load_runs(report["run_files"], pd.read_csv(report["metrics_csv"]))
    analysis = per_class_analysis(runs)
    assert set(analysis["method"]) == {"distill_pl"}  # the teacher and the baseline are its axes
    row = analysis[(analysis["fraction"] == 0.1) & (analysis["class"] == "Bowling")].iloc[0]
    per_class = lambda method, fraction: [r["per_class"]["Bowling"] for r in runs  # noqa: E731
                                          if r["method"] == method and r["fraction"] == fraction]
    assert row["gain"] == pytest.approx(100 * (np.mean(per_class("distill_pl", 0.1))
                                               - np.mean(per_class("supervised", 0.1))))
    assert row["teacher_zeroshot"] == pytest.approx(100 * np.mean(per_class("clip_zeroshot", 0.1)
                                                                  + per_class("clip_zeroshot", 1.0)))
    # pooled over the two seeds: (2 + 4) correct of (4 + 4) used, of 16 seen
    assert row["pseudo_label_accuracy"] == pytest.approx(75.0) and row["pseudo_label_coverage"] == pytest.approx(50.0)
    yo_yo = analysis[(analysis["fraction"] == 0.1) & (analysis["class"] == "Yo_Yo")].iloc[0]
    assert np.isnan(yo_yo["pseudo_label_accuracy"]) and yo_yo["pseudo_label_coverage"] == 0
    at_full = analysis[analysis["fraction"] == 1.0]
    assert at_full["pseudo_label_accuracy"].isna().all()  # no unlabeled video at 100%
    written = pd.read_csv(report["paths"]["per_class_analysis"])
    assert len(written) == len(analysis)


def test_two_teachers_get_a_table_each_and_share_the_gain_plot(tmp_path):
    """Two teachers' results trees (config `teachers`: a grid axis) in one report: a summary and a
    significance table per teacher, the per-class analysis per teacher, the figures drawn."""
    first = write_results_tree(tmp_path / "a")
    second = write_results_tree(tmp_path / "b", random_teacher=True, teacher_model="svar-tiny-clip")
    paths = make_report([first[0], second[0]], first[1] + second[1], tmp_path / "report")
    markdown = paths["summary_md"].read_text()
    assert "## synthetic, teacher ViT-B-32 / openai (2 seeds" in markdown
    assert "## synthetic, teacher svar-tiny-clip / random (2 seeds" in markdown
    assert markdown.count("### Paired tests on synthetic, teacher") == 2
    significance = pd.read_csv(paths["significance_csv"])
    assert set(significance["teacher"]) == {"ViT-B-32 / openai", "svar-tiny-clip / random"}
    summary = pd.read_csv(paths["summary_csv"])
    assert len(summary) == 2 * len(ACCURACY) * 2  # teachers × methods × fractions
    analysis = pd.read_csv(paths["per_class_analysis"])
    assert set(analysis["teacher"]) == {"ViT-B-32 / openai", "svar-tiny-clip / random"}
    page = paths["html"].read_text()
    assert 'id="summary-synthetic-teacher-ViT-B-32-openai"' in page
    assert paths["gain_vs_teacher_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_readme_lists_exactly_the_registered_figures_with_their_captions():
    """results/README.md's table of figures is the registry's (svar.report.figures.readme_table): a figure
    registered without being documented there, or documented and gone, fails here."""
    readme = (Path(__file__).resolve().parent.parent / "results" / "README.md").read_text()
    begin, end = "<!-- figures: svar.report.figures.readme_table() -->\n", "<!-- end of figures -->\n"
    assert begin in readme and end in readme, f"results/README.md: the markers {begin.strip()} and {end.strip()}"
    listed = readme[readme.index(begin) + len(begin):readme.index(end)]
    assert listed == readme_table(), ("results/README.md lists other figures than svar.report.figures.FIGURES; "
                                      f"between its markers put:\n{readme_table()}")


# --------------------------------------------------------------------------- what a reader sees


def test_each_table_says_the_settings_its_runs_were_made_with(report):
    """Under each summary table (Markdown and HTML): steps, batch, lr, μ, test views and the
    student's clips, read from the runs' metrics.json; μ names the methods that have one."""
    line = ("Settings as run (from the runs' metrics.json): 20 steps; batch 8; lr 0.003; "
            "μ = 7 unlabeled per labeled clip (distill_pl); test views 3 clips × 1 crop; "
            "clips of 16 frames at 112×112 px, dense sampling (stride 4); "
            "teacher-only, no student trained: clip_zeroshot.")
    markdown = report["paths"]["summary_md"].read_text()
    table, tests = markdown.split("### Paired tests")
    assert line in table and table.index("| supervised |") < table.index(line)
    page = report["paths"]["html"].read_text()
    summary_table = page.index('<table class="summary" id="summary-synthetic"')
    assert page.index(f'<p class="note settings">{html.escape(line)}</p>') > summary_table


def test_settings_that_differ_name_their_methods():
    from svar.report.tables import settings_text

    def run(method, lr, steps=100, views="1 clip × 1 crop"):
        return {"method": method, "provenance": {"options": {"train": {"lr": lr, "steps": steps, "batch_size": 4}},
                                                  "evaluate": {"clips": 1}, "views": views, "clips": None}}

    text = settings_text([run("a", 0.01), run("b", 0.003), run("b", 0.003, views="2 clips × 3 crops"),
                          run("c", 0.01, steps=1)])
    assert text == ("Settings as run (from the runs' metrics.json): 100 steps (a, b); 1 step (c); batch 4; "
                    "lr 0.01 (a, c); lr 0.003 (b); test views 1 clip × 1 crop (a, b, c); "
                    "test views 2 clips × 3 crops (b)")
    assert settings_text([]) == ""


def test_counts_are_worded_in_the_singular_for_one(tmp_path):
    """One seed and one run with a random teacher: no "1 seeds", "1 runs" anywhere in the report's text."""
    from svar.wording import counted

    assert [counted(n, "seed") for n in (0, 1, 2)] == ["0 seeds", "1 seed", "2 seeds"]
    assert counted(1, "class", "classes") == "1 class" and counted(3, "class", "classes") == "3 classes"
    metrics_csv, run_files = write_results_tree(tmp_path, methods=("supervised",), random_teacher=True, seeds=(0,))
    paths = make_report(metrics_csv, run_files[:1] + run_files[1:], tmp_path / "report")
    texts = {name: paths[name].read_text() for name in ("summary_md", "summary_tex", "html")}
    for name, text in texts.items():
        wrong = re.findall(r"\b1 (?:seeds|runs|clips|crops|frames|steps|teachers|problems|list sources)\b", text)
        assert not wrong, (name, wrong)
    assert "## synthetic (1 seed;" in texts["summary_md"]
    assert "<h3>synthetic (1 seed)</h3>" in texts["html"]
    assert "synthetic: 1 seed, no std, final model" in texts["summary_tex"]
    assert "TEACHER WEIGHTS ARE RANDOM in 2 of 2 runs" in texts["summary_md"]  # one seed, two fractions
    assert "20 steps" in texts["summary_md"] and "3 clips × 1 crop" in texts["summary_md"]


def test_the_random_badge_is_an_inline_badge_beside_the_weights(tmp_path):
    """The RANDOM flag in the provenance list is a small inline badge followed by its count, not
    the warning banner's style (1em padding, which spilled over the teacher's name above it)."""
    metrics_csv, run_files = write_results_tree(tmp_path, methods=("supervised",), random_teacher=True)
    page = make_report(metrics_csv, run_files, tmp_path / "report")["html"].read_text()
    weights = re.search(r"<dt>teacher weights</dt><dd>(.*?)</dd>", page).group(1)
    assert weights == '<span class="badge" id="random-teacher-badge">RANDOM</span> in 4 of 4 runs'
    badge_css = re.search(r"\.badge \{([^}]*)\}", page).group(1)
    assert "display: inline-block" in badge_css and "padding: 0 0.4em" in badge_css


def figures_of(monkeypatch):
    """The figures the report draws, kept open instead of written (svar.report.figures.save_figure)."""
    from svar.report import figures as report_figures

    figures = []
    monkeypatch.setattr(report_figures, "save_figure", lambda fig, out: figures.append(fig))
    return figures


def marker_positions(ax) -> dict:
    """Where each labelled series' markers are drawn, in display pixels, read back from the artists."""
    positions = {}
    for line in ax.get_lines():
        if not line.get_label().startswith("_"):
            positions[line.get_label()] = line.get_transform().transform(line.get_xydata())
    for points in ax.collections:
        if not points.get_label().startswith("_") and len(points.get_offsets()):
            positions[points.get_label()] = points.get_offset_transform().transform(points.get_offsets())
    return positions


def test_tied_methods_markers_stand_apart_in_the_accuracy_plot():
    """Two methods with the same top-1 at every fraction and seed: their markers are drawn side by
    side (dodged sideways by a few points), at the same height, not one over the other."""
    import matplotlib.pyplot as plt

    from svar.report.figures import accuracy_figure

    rows = [{"dataset": "d", "teacher": "t", "method": method, "fraction": fraction, "seed": seed, "metric": "top1",
             "value": value}
            for method in ("a_tied", "b_tied", "c_other") for fraction in (0.1, 1.0)
            for seed, value in ((0, 0.5), (1, 0.7 if method != "c_other" else 0.2))]
    fig = accuracy_figure(pd.DataFrame(rows), load_published().iloc[:0])
    fig.canvas.draw()
    positions = marker_positions(fig.axes[0])
    plt.close(fig)
    tied, other = positions["a_tied"], positions["b_tied"]
    assert len(tied) == 2 and np.allclose(tied[:, 1], other[:, 1])  # the same accuracy, at the same height
    assert (np.abs(tied[:, 0] - other[:, 0]) >= 4).all(), "tied markers drawn over each other"
    # beside its fraction's tick: less than half a decade away on a log axis
    ax_width = fig.axes[0].get_window_extent().width
    assert (np.abs(tied[:, 0] - other[:, 0]) < 0.05 * ax_width).all()


def test_tied_methods_markers_stand_apart_in_the_per_class_plots(report, monkeypatch):
    """The per-class scatter plots (gain against the teacher, pseudo-label accuracy): a second method
    with the same numbers as the first is drawn beside it, class by class."""
    import matplotlib.pyplot as plt

    from svar.report.analysis import per_class_analysis
    from svar.report.figures import plot_gain_vs_teacher, plot_per_class_pseudo_labels

    runs = load_runs(report["run_files"], pd.read_csv(report["metrics_csv"]))
    analysis = per_class_analysis(runs)
    twin = analysis[analysis["method"] == "distill_pl"].assign(method="distill_pl_twin")
    analysis = pd.concat([analysis, twin], ignore_index=True)
    figures = figures_of(monkeypatch)
    plot_gain_vs_teacher(analysis, "synthetic", None)
    plot_per_class_pseudo_labels(analysis, "synthetic", None)
    assert len(figures) == 2
    for fig in figures:
        fig.canvas.draw()
        positions = marker_positions(fig.axes[0])
        plt.close(fig)
        first, second = positions["distill_pl"], positions["distill_pl_twin"]
        finite = np.isfinite(first).all(1)  # a class with no pseudo-label used has no point
        assert finite.sum() >= len(CLASSES) - 1
        assert np.allclose(first[finite, 1], second[finite, 1])
        assert (np.abs(first[finite, 0] - second[finite, 0]) >= 4).all(), "tied markers drawn over each other"


def centred_notes(fig) -> list[str]:
    """The texts drawn at the centre of an axes of fig (say_why_empty's, _note_figure's)."""
    return [text.get_text().replace("\n", " ") for ax in fig.axes for text in ax.texts
            if text.get_transform() == ax.transAxes and text.get_position() == (0.5, 0.5)
            and text.get_ha() == "center" and text.get_va() == "center"]


def test_a_pseudo_label_panel_with_nothing_to_score_says_why(tmp_path, monkeypatch):
    """Runs that logged pseudo-label diagnostics but used none (coverage 0, accuracy NaN at every
    step, as a threshold never reached or an unlabeled term that never ran leaves them): the
    accuracy panel says so in its centre; the coverage panel, which has its zeros, draws them."""
    import matplotlib.pyplot as plt

    from svar.report.figures import plot_pseudo_labels

    metrics_csv, run_files = write_results_tree(tmp_path, methods=("distill_pl",))
    for path in run_files:
        curve_path = path.parent / "train_curve.csv"
        curve = pd.read_csv(curve_path)
        if "pl_accuracy" in curve.columns:
            curve.assign(pl_accuracy=np.nan, pl_mask=0.0).to_csv(curve_path, index=False)
    runs = load_runs(run_files, pd.read_csv(metrics_csv))
    figures = figures_of(monkeypatch)
    assert plot_pseudo_labels(runs, "synthetic", None) == ["distill_pl"]
    (fig,) = figures
    accuracy, coverage = fig.axes[0], fig.axes[1]
    assert centred_notes(fig) == ["no pseudo-label was used at any step at 10% labels (coverage 0%: none passed the "
                                  "method's threshold, or its unlabeled term never ran): nothing to score"]
    assert accuracy.texts and not coverage.texts
    assert any(np.isfinite(line.get_ydata()).any() for line in coverage.get_lines())
    plt.close(fig)


def test_figures_with_nothing_to_draw_say_why(report, monkeypatch):
    """No method with pseudo-labels, no gain to draw: a centred reason, never bare axes."""
    import matplotlib.pyplot as plt

    from svar.report.analysis import per_class_analysis
    from svar.report.figures import plot_gain_vs_teacher, plot_per_class_pseudo_labels, plot_pseudo_labels

    runs = load_runs(report["run_files"], pd.read_csv(report["metrics_csv"]))
    without = [r for r in runs if r["method"] != "distill_pl"]
    analysis = per_class_analysis(runs)
    used_none = analysis.assign(pseudo_label_accuracy=np.nan, pseudo_label_coverage=0.0)
    no_gain = analysis.assign(gain=np.nan)
    figures = figures_of(monkeypatch)
    assert plot_pseudo_labels(without, "synthetic", None) == []
    plot_per_class_pseudo_labels(analysis[analysis["method"] == "none"], "synthetic", None)
    plot_per_class_pseudo_labels(used_none, "synthetic", None)
    plot_gain_vs_teacher(no_gain, "synthetic", None)
    notes = [centred_notes(fig) for fig in figures]
    for fig in figures:
        plt.close(fig)
    assert notes == [
        ["no pseudo-label diagnostics on synthetic: no run used unlabeled videos with pseudo-labels"],
        ["no per-class pseudo-label accuracy on synthetic: it needs clip_zeroshot, supervised and a method that "
         "trains on pseudo-labels in the grid"],
        ["no per-class pseudo-label accuracy on synthetic: no pseudo-label was used (coverage 0% in every class: "
         "none passed the method's threshold, or its unlabeled term never ran): nothing to score"],
        ["no class has both a supervised and another method's accuracy: no gain to draw"]]
