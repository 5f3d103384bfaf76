# Stage 4 — teacher: open_clip features of every video, once per dataset, whatever the grid.


rule teacher:
    input:
        manifest="results/{dataset}/manifest.csv",
        classes="results/{dataset}/classes.csv",
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
