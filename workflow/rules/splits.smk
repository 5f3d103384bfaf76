# Stage 3 — splits: labeled / unlabeled / val / test roles per (fraction, seed), and how they were made.


rule splits:
    input:
        rules.index.output.manifest,
    output:
        split=split_file("{budget}", "{seed}"),
        info=split_file("{budget}", "{seed}", "json"),
    log:
        f"{RESULTS}/logs/splits/{{budget}}_seed{{seed}}.log",
    # a second of pandas on the manifest: under SLURM on the submit host, not a job in the queue
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        budget=budget_args,
        args=splits_args,
    shell:
        "python -m svar splits --manifest {input} {params.budget} --seed {wildcards.seed}"
        " {params.args} --out {output.split} --info-out {output.info} > {log} 2>&1"
