# Stage 7 — aggregate: the tables over every run of this config (the figures are the report's).


rule aggregate:
    input:
        all_runs("metrics.json"),
    output:
        metrics=report(f"{RESULTS}/metrics.csv", caption="../report/metrics.rst", category="Tables"),
        summary=report(f"{RESULTS}/summary.csv", caption="../report/summary.rst", category="Tables"),
        summary_json=f"{RESULTS}/summary.json",
        top1_csv=f"{RESULTS}/top1_by_fraction.csv",
    log:
        f"{RESULTS}/logs/aggregate.log",
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
