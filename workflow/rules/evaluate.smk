# Stage 6 — evaluate: accuracy of each final model on the official test list. One job per
# teacher and method scores all of its (fraction, seed) runs: the test list is the same for every run, so
# its clips are read once per run from the clip cache's test part, batch by batch, and the grid
# needs a few jobs here, not one per run. How a
# student is scored is the config's `evaluate` section (a teacher-only head reads none of it).


rule evaluate:
    input:
        unpack(evaluate_inputs),
        unpack(clip_cache_input("test")),
        manifest=rules.index.output.manifest,
        teacher=rules.teacher.output[0],
    output:
        run_files("{root}", "{method}", "metrics.json"),
    log:
        "{root}/logs/evaluate/{method}.log",
    benchmark:
        job_benchmark("evaluate", "{method}", "{root}")
    conda:
        "../envs/svar.yaml"
    threads: method_res("evaluate", "threads")
    resources:
        mem_mb=method_res("evaluate", "mem_mb"),
        runtime=method_res("evaluate", "runtime"),
        gpu=gpu_jobs("evaluate"),
    params:
        runs=evaluate_args,
        settings=evaluate_settings,
        clip_cache=clip_cache_arg,
        # what decides the pixels it reads (common.smk)
        clip_cache_reads=clip_cache_reads("test"),
    shell:
        "python -m svar evaluate {params.runs} --manifest {input.manifest} --teacher {input.teacher}"
        " {params.settings} --threads {threads} {params.clip_cache} > {log} 2>&1"
