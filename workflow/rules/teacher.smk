# Stage 4 — teacher: open_clip features of every video, once per dataset, whatever the grid.


# The generated dataset's own CLIP-style teacher, trained on its captioned frames. Its output is
# an ordinary checkpoint file, which rule teacher loads as `pretrained` like any other.
rule pretrain_teacher:
    input:
        "data/synthetic",
    output:
        model="results/synthetic/teacher/pretrained.pt",
        curve="results/synthetic/teacher/pretrain_curve.csv",
    params:
        model=config["teacher"]["model"],
        cfg=config["pretrain_teacher"],
    log:
        "results/logs/pretrain_teacher/synthetic.log",
    conda:
        "../envs/svar.yaml"
    threads: res("pretrain_teacher", "threads")
    resources:
        mem_mb=res("pretrain_teacher", "mem_mb"),
        runtime=res("pretrain_teacher", "runtime"),
    shell:
        "python -m svar pretrain-teacher --pool {input}/pretrain --out {output.model} --model {params.model}"
        " --steps {params.cfg[steps]} --batch-size {params.cfg[batch_size]} --lr {params.cfg[lr]}"
        " --weight-decay {params.cfg[weight_decay]} --seed {params.cfg[seed]} --threads {threads}"
        " --curve {output.curve} > {log} 2>&1"


# Downloads an open_clip model's weights into teacher.cache_dir, once. A local rule: under the
# SLURM profile it runs on the login node, which has internet; compute nodes then read the cache
# offline. Only in the DAG when the teacher needs a download (a pretrained tag or an hf-hub: model).
rule teacher_weights:
    output:
        TEACHER_WEIGHTS_RECEIPT,
    params:
        cfg=config["teacher"],
    log:
        "results/logs/teacher_weights.log",
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "python -m svar teacher-weights --model {params.cfg[model]:q} --pretrained {params.cfg[pretrained]:q}"
        " --cache-dir {params.cfg[cache_dir]:q} --out {output} > {log} 2>&1"


# One shard of the videos (every teacher.shards-th one): N jobs, each resumable, then one gather.
rule teacher_shard:
    input:
        unpack(teacher_inputs),
    output:
        "results/{dataset}/teacher/shards/shard_{shard}_of_{shards}.pt",
    params:
        cfg=config["teacher"],
        options=teacher_options,
        out_dir=lambda w, output: Path(output[0]).parent,
    log:
        "results/logs/teacher/{dataset}/shard_{shard}_of_{shards}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("teacher", "threads")
    resources:
        mem_mb=res("teacher", "mem_mb"),
        runtime=res("teacher", "runtime"),
    shell:
        "{params.options[env]}python -m svar teacher --manifest {input.manifest} --classes {input.classes}"
        " --shard {wildcards.shard} --shards {wildcards.shards} --out-dir {params.out_dir}"
        " --model {params.cfg[model]:q} --pretrained {params.cfg[pretrained]:q}"
        " --batch-size {params.cfg[batch_size]} --device {params.cfg[device]} {params.options[args]}"
        " > {log} 2>&1"


# The one feature store every run of the grid reads.
rule teacher:
    input:
        teacher_shards,
    output:
        "results/{dataset}/teacher/features.pt",
    log:
        "results/logs/teacher/{dataset}.log",
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=res("teacher", "mem_mb"),
        runtime=res("teacher", "runtime"),
    shell:
        "python -m svar teacher-gather {input} --out {output} > {log} 2>&1"
