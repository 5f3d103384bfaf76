# Stage 6 — evaluate: accuracy of each final model on the official test list. One job per
# method scores all of its (fraction, seed) runs: the test list is the same for every run, so
# its clips are decoded once, and the grid needs a few jobs here, not one per run.


rule evaluate:
    input:
        unpack(evaluate_inputs),
        manifest="results/{dataset}/manifest.csv",
        teacher="results/{dataset}/teacher/features.pt",
    output:
        run_files("{dataset}", "{method}", "metrics.json"),
    params:
        runs=evaluate_args,
    log:
        "results/logs/evaluate/{dataset}/{method}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
    shell:
        "python -m svar evaluate {params.runs} --manifest {input.manifest} --teacher {input.teacher}"
        " --threads {threads} > {log} 2>&1"
