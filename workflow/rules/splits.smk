# Stage 3 — splits: labeled / unlabeled / test roles per (fraction, seed).


rule splits:
    input:
        rules.index.output.manifest,
    output:
        split_file("{fraction}", "{seed}"),
    log:
        f"{RESULTS}/logs/splits/fraction{{fraction}}_seed{{seed}}.log",
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        args=splits_args,
    shell:
        "python -m svar splits --manifest {input} --fraction {wildcards.fraction} --seed {wildcards.seed}"
        " {params.args} --out {output} > {log} 2>&1"
