# Results a paper prints: tables (CSV, Markdown, LaTeX), plots beside published results,
# per-class accuracy, a confusion matrix, training curves and a self-contained HTML report.


rule report:
    input:
        metrics=expand(rules.aggregate.output.metrics, root=ROOTS),
        runs=all_runs("metrics.json"),
        curves=all_runs("train_curve.csv"),
        pseudo_labels=all_runs("pseudo_labels.csv"),
        plan=rules.plan.output[0],
    output:
        **report_figures(),
        summary_md=report(f"{RESULTS}/report/summary.md", caption="../report/summary.rst", category="Tables"),
        summary_tex=f"{RESULTS}/report/summary.tex",
        summary_csv=f"{RESULTS}/report/summary.csv",
        significance_csv=f"{RESULTS}/report/significance.csv",
        per_class_analysis=f"{RESULTS}/report/per_class_analysis.csv",
        provenance=f"{RESULTS}/report/provenance.json",
        html=f"{RESULTS}/report/report.html",
        cost_csv=f"{RESULTS}/report/cost.csv",
        cost_md=f"{RESULTS}/report/cost.md",
    log:
        f"{RESULTS}/logs/report.log",
    # seconds of tables and plots from files the runs wrote: under SLURM on the submit host, not
    # worth a job in the queue
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        out_dir=lambda w, output: Path(output.html).parent,
        # read as found, not inputs: every job that writes one runs before this one (it feeds the
        # metrics), and a job whose outputs came from elsewhere (DVC, a copy) has none to make
        benchmarks=BENCHMARKS,
    shell:
        "python -m svar report --metrics {input.metrics} --runs {input.runs} --out-dir {params.out_dir}"
        " --benchmarks {params.benchmarks} --plan {input.plan} > {log} 2>&1"
