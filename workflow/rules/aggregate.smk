# Stage 7 — aggregate: the tables over every run of this config with one teacher (in its results
# folder `root`; the figures, and the teachers side by side, are the report's).


rule aggregate:
    input:
        lambda w: teacher_runs(w.root, "metrics.json"),
    output:
        metrics=report("{root}/metrics.csv", caption="../report/metrics.rst", category="Tables"),
        summary=report("{root}/summary.csv", caption="../report/summary.rst", category="Tables"),
        summary_json="{root}/summary.json",
        top1_csv="{root}/top1_by_fraction.csv",
    log:
        "{root}/logs/aggregate.log",
    # seconds of pandas on files the runs wrote: under SLURM on the submit host, not worth a job
    # in the queue
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python -m svar aggregate {input} --metrics-out {output.metrics} --summary-out {output.summary}"
        " --summary-json-out {output.summary_json} --top1-csv-out {output.top1_csv} > {log} 2>&1"
