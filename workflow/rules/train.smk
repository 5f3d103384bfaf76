# Stage 5 — train: one run per (method, fraction, seed); teacher-only baselines fit a head.
# A run is passed the config keys its method reads (svar.methods), and no others.


rule train:
    input:
        manifest="results/{dataset}/manifest.csv",
        split=split_file("{dataset}", "{fraction}", "{seed}"),
        teacher="results/{dataset}/teacher/features.pt",
    output:
        model=run_file("{dataset}", "{method}", "{fraction}", "{seed}", "model.pt"),
        curve=run_file("{dataset}", "{method}", "{fraction}", "{seed}", "train_curve.csv"),
    log:
        "results/logs/train/{dataset}/{method}/fraction{fraction}_seed{seed}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
    params:
        options=train_options,
    shell:
        "python -m svar train --manifest {input.manifest} --split {input.split} --teacher {input.teacher}"
        " --method {wildcards.method} --options {params.options:q} --seed {wildcards.seed}"
        " --dataset {wildcards.dataset} --fraction {wildcards.fraction} --threads {threads}"
        " --out {output.model} --curve {output.curve} > {log} 2>&1"
