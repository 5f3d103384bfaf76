# Stage 4 — teacher: features of every video (open_clip or X-CLIP: svar.teacher.backends), once
# per dataset and teacher, whatever the rest of the grid. `root` is a teacher's results folder
# (common.smk's TEACHERS).


# The generated dataset's own CLIP-style teacher, trained on its captioned frames. Its output is
# an ordinary checkpoint file, which rule teacher loads as `pretrained` like any other.
rule pretrain_teacher:
    input:
        DATA,
    output:
        model=pretrained_file("generated", RESULTS),
        curve=f"{RESULTS}/teacher/pretrain_curve.csv",
    log:
        f"{RESULTS}/logs/pretrain_teacher.log",
    benchmark:
        job_benchmark("pretrain_teacher")
    conda:
        "../envs/svar.yaml"
    threads: res("pretrain_teacher", "threads")
    resources:
        mem_mb=res("pretrain_teacher", "mem_mb"),
        runtime=lambda w: runtime_request("pretrain_teacher"),
        gpu=gpu_jobs("pretrain_teacher"),
    params:
        model=TEACHER["model"],
        args=flags(config["pretrain_teacher"]),
        # the captioned pool it learns from
        reads=read_digest(lambda data: pool_inputs(f"{data}/pretrain")),
    shell:
        "python -m svar pretrain-teacher --pool {input:q}/pretrain --out {output.model} --model {params.model:q}"
        " {params.args} --threads {threads} --curve {output.curve} > {log} 2>&1"


# Downloads a teacher's weights (open_clip's files, an X-CLIP snapshot) into teacher.cache_dir, once. A local rule: under the
# SLURM profile it runs on the login node, which has internet; compute nodes then read the cache
# offline. Only in the DAG when the teacher needs a download (a pretrained tag or an hf-hub: model).
rule teacher_weights:
    output:
        "results/teacher_weights/{receipt}.json",
    log:
        "results/logs/teacher_weights/{receipt}.log",
    wildcard_constraints:
        receipt=one_of(WEIGHTS_RECEIPTS),
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        model=lambda w: WEIGHTS_RECEIPTS[w.receipt]["model"],
        pretrained=lambda w: WEIGHTS_RECEIPTS[w.receipt]["pretrained"],
        cache_dir=TEACHER["cache_dir"],
    shell:
        "python -m svar teacher-weights --model {params.model:q} --pretrained {params.pretrained:q}"
        " --cache-dir {params.cache_dir:q} --out {output} > {log} 2>&1"


# One shard of the videos (every teacher.shards-th one): N jobs, each resumable, then one gather.
rule teacher_shard:
    input:
        unpack(teacher_inputs),
    output:
        "{root}/teacher/shards/shard_{shard}_of_{shards}.pt",
    log:
        "{root}/logs/teacher/shard_{shard}_of_{shards}.log",
    benchmark:
        job_benchmark("teacher_shard", "shard_{shard}_of_{shards}", "{root}")
    conda:
        "../envs/svar.yaml"
    threads: res("teacher", "threads")
    resources:
        mem_mb=res("teacher", "mem_mb"),
        runtime=lambda w: runtime_request("teacher"),
        gpu=gpu_jobs("teacher_shard"),
    params:
        args=teacher_args,
        env=teacher_env,
        # decoding processes: how fast, not what (x-reruns: false)
        workers=unrecorded(lambda w: TEACHER["workers"]),
        out_dir=lambda w, output: Path(output[0]).parent,
    shell:
        "{params.env}python -m svar teacher --manifest {input.manifest} --classes {input.classes}"
        " --shard {wildcards.shard} --shards {wildcards.shards} --out-dir {params.out_dir} {params.args}"
        " --workers {params.workers}"
        " --job-threads {threads}"
        " > {log} 2>&1"


# The one feature store every run with this teacher reads: the shards' tensors concatenated
# (UCF101, ViT-B: ~0.3 GB), seconds of work, so under SLURM on the submit host, not a job in the queue.
rule teacher:
    input:
        teacher_shards,
    output:
        "{root}/teacher/features.pt",
    log:
        "{root}/logs/teacher/gather.log",
    benchmark:
        job_benchmark("teacher", root="{root}")
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m svar teacher-gather {input} --out {output} > {log} 2>&1"
