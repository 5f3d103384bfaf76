# Stage 1 — dataset: the generated dataset, UCF101 / HMDB51 from their official archives, or your
# own videos (dataset.root), all in UCF101's layout and split format, in data/<folder named by
# what makes it>.


# An official archive from the internet: under SLURM on the login node, which has internet
# (compute nodes often have none); dataset.archives_dir or dataset.extracted_dir skip it.
rule download:
    output:
        "data/archives/{archive}",
    log:
        "results/logs/download/{archive}.log",
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=600,
    shell:
        "python -m svar download --archive {wildcards.archive} --out-dir data/archives > {log} 2>&1"


if DATASET_ROOT or EXTRACTED:

    # Your own videos: data/<name> links to a folder in UCF101's layout, or to each video a CSV
    # lists (its split lists written); the CSV is the input, so editing it lays it out again.
    # UCF101 / HMDB51 extracted on a shared disk (dataset.extracted_dir): data/<name>/videos
    # links to its class folders, the split lists converted. Links and a few lists only: a local
    # rule (the folder is on the login node's disk too).
    rule dataset:
        input:
            dataset_archives,
        output:
            directory(DATA),
        log:
            f"{RESULTS}/logs/dataset.log",
        benchmark:
            job_benchmark("dataset")
        localrule: True
        conda:
            "../envs/svar.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            args=dataset_args,
        shell:
            "python -m svar dataset {params.args} --out {output:q} > {log} 2>&1"

else:

    rule dataset:
        input:
            dataset_archives,
        output:
            directory(DATA),
        log:
            f"{RESULTS}/logs/dataset.log",
        benchmark:
            job_benchmark("dataset")
        conda:
            "../envs/svar.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=240,
        params:
            name=DATASET,
            args=dataset_args,
        shell:
            "python -m svar dataset --name {params.name} --out {output:q} {params.args} > {log} 2>&1"
