# Stage 6 — evaluate: accuracy of the final model on the official test list.


rule evaluate:
    input:
        model="results/{dataset}/runs/{method}/fraction{fraction}_seed{seed}/model.pt",
        manifest="results/{dataset}/manifest.csv",
        split="results/{dataset}/splits/fraction{fraction}_seed{seed}.csv",
        teacher="results/{dataset}/teacher/features.pt",
    output:
        "results/{dataset}/runs/{method}/fraction{fraction}_seed{seed}/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{method}/fraction{fraction}_seed{seed}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
    shell:
        "python -m svar evaluate --model {input.model} --manifest {input.manifest} --split {input.split}"
        " --teacher {input.teacher} --threads {threads} --out {output} > {log} 2>&1"
