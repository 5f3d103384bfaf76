# Stage 5 — train: one run per (method, fraction, seed); teacher-only baselines fit a head.


rule train:
    input:
        manifest="results/{dataset}/manifest.csv",
        split="results/{dataset}/splits/fraction{fraction}_seed{seed}.csv",
        teacher="results/{dataset}/teacher/features.pt",
    output:
        model="results/{dataset}/runs/{method}/fraction{fraction}_seed{seed}/model.pt",
        curve="results/{dataset}/runs/{method}/fraction{fraction}_seed{seed}/train_curve.csv",
    params:
        options=lambda w: run_options(),
    log:
        "results/logs/train/{dataset}/{method}/fraction{fraction}_seed{seed}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
    shell:
        "python -m svar train --manifest {input.manifest} --split {input.split} --teacher {input.teacher}"
        " --method {wildcards.method} --options '{params.options}' --seed {wildcards.seed}"
        " --dataset {wildcards.dataset} --fraction {wildcards.fraction} --threads {threads}"
        " --out {output.model} --curve {output.curve} > {log} 2>&1"
