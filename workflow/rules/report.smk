# Results a paper prints: tables (CSV, Markdown, LaTeX), plots beside published results,
# per-class accuracy, a confusion matrix, training curves and a self-contained HTML report.


rule report:
    input:
        metrics=rules.aggregate.output.metrics,
        runs=all_metrics(),
    output:
        summary_md=report("results/report/summary.md", caption="../report/summary.rst", category="Tables"),
        summary_tex="results/report/summary.tex",
        summary_csv="results/report/summary.csv",
        accuracy=report("results/report/accuracy_vs_fraction.png", caption="../report/top1.rst", category="Plots"),
        per_class="results/report/per_class.png",
        confusion="results/report/confusion.png",
        curves="results/report/training_curves.png",
        provenance="results/report/provenance.json",
        html="results/report/report.html",
    log:
        "results/logs/report.log",
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m svar report --metrics {input.metrics} --runs-dir results --out-dir results/report > {log} 2>&1"
