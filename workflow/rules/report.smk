# Results a paper prints: tables (CSV, Markdown, LaTeX), plots beside published results,
# per-class accuracy, a confusion matrix, training curves and a self-contained HTML report.


rule report:
    input:
        metrics=rules.aggregate.output.metrics,
        runs=all_runs("metrics.json"),
        curves=all_runs("train_curve.csv"),
    output:
        summary_md=report(f"{RESULTS}/report/summary.md", caption="../report/summary.rst", category="Tables"),
        summary_tex=f"{RESULTS}/report/summary.tex",
        summary_csv=f"{RESULTS}/report/summary.csv",
        accuracy=report(f"{RESULTS}/report/accuracy_vs_fraction.png", caption="../report/top1.rst", category="Plots"),
        per_class=f"{RESULTS}/report/per_class.png",
        confusion=f"{RESULTS}/report/confusion.png",
        curves=f"{RESULTS}/report/training_curves.png",
        provenance=f"{RESULTS}/report/provenance.json",
        html=f"{RESULTS}/report/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        out_dir=lambda w, output: Path(output.html).parent,
    shell:
        "python -m svar report --metrics {input.metrics} --runs {input.runs} --out-dir {params.out_dir} > {log} 2>&1"
