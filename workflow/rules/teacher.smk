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


rule teacher:
    input:
        unpack(teacher_inputs),
    output:
        "results/{dataset}/teacher/features.pt",
    params:
        cfg=config["teacher"],
        templates=lambda w: " ".join(f"--template {json.dumps(t)}" for t in config["teacher"]["templates"]),
    log:
        "results/logs/teacher/{dataset}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("teacher", "threads")
    resources:
        mem_mb=res("teacher", "mem_mb"),
        runtime=res("teacher", "runtime"),
    shell:
        "python -m svar teacher --manifest {input.manifest} --classes {input.classes} --out {output}"
        " --model {params.cfg[model]} --pretrained {params.cfg[pretrained]} --frames {params.cfg[frames]}"
        " --batch-size {params.cfg[batch_size]} --device {params.cfg[device]} --workers {threads}"
        " {params.templates} > {log} 2>&1"
