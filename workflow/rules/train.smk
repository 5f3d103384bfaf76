# Stage 5 — train: one run per (teacher, method, fraction, seed); teacher-only baselines fit a head.
# A run is passed the config keys its method reads (svar.methods), and no others.


rule train:
    input:
        unpack(student_weights_inputs),
        unpack(teacher_weights_input),
        unpack(clip_cache_input("train")),
        manifest=rules.index.output.manifest,
        split=split_file("{budget}", "{seed}"),
        split_info=split_file("{budget}", "{seed}", "json"),
        teacher=rules.teacher.output[0],
    output:
        model=run_file("{root}", "{method}", "{budget}", "{seed}", "model.pt"),
        curve=run_file("{root}", "{method}", "{budget}", "{seed}", "train_curve.csv"),
        # the pseudo-labels it trained on, per true class (header only for a method that uses none)
        pseudo_labels=run_file("{root}", "{method}", "{budget}", "{seed}", "pseudo_labels.csv"),
    log:
        "{root}/logs/train/{method}/{budget}_seed{seed}.log",
    benchmark:
        job_benchmark("train", "{method}/{budget}_seed{seed}", "{root}")
    conda:
        "../envs/svar.yaml"
    threads: method_res("train", "threads")
    resources:
        mem_mb=method_res("train", "mem_mb"),
        runtime=method_res("train", "runtime"),
        gpu=gpu_jobs("train"),
    params:
        budget=budget_args,
        options=train_options,
        run_options=unrecorded(train_run_options),
        dataset=DATASET,
        clip_cache=clip_cache_arg,
        # what decides the pixels it reads (common.smk)
        clip_cache_reads=clip_cache_reads("train"),
    shell:
        "python -m svar train --manifest {input.manifest} --split {input.split} --split-info {input.split_info}"
        " --teacher {input.teacher}"
        " --method {wildcards.method} --options {params.options:q} --run-options {params.run_options:q}"
        " --seed {wildcards.seed}"
        " --dataset {params.dataset} {params.budget} --threads {threads}"
        " --out {output.model} --curve {output.curve} --pseudo-labels {output.pseudo_labels}"
        " {params.clip_cache} > {log} 2>&1"
