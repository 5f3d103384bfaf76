# Stage 1 — dataset: the generated dataset, in UCF101's layout and split format.


rule dataset:
    output:
        directory("data/synthetic"),
    params:
        spec=config["dataset"]["synthetic"],
    log:
        "results/logs/dataset/synthetic.log",
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "python -m svar dataset --name synthetic --out {output} --seed {params.spec[seed]} --classes {params.spec[classes]} --size {params.spec[size]}"
        " --groups {params.spec[groups]} --clips-per-group {params.spec[clips_per_group]}"
        " --test-groups {params.spec[test_groups]} --pretrain-videos {params.spec[pretrain_videos]}"
        " > {log} 2>&1"
