# Stage 2 — index: decode every video once; the manifest, the exclusions, the class list.


rule index:
    input:
        "data/{dataset}",
    output:
        manifest="results/{dataset}/manifest.csv",
        exclusions="results/{dataset}/exclusions.csv",
        classes="results/{dataset}/classes.csv",
    log:
        "results/logs/index/{dataset}.log",
    conda:
        "../envs/svar.yaml"
    threads: res("index", "threads")
    resources:
        mem_mb=res("index", "mem_mb"),
        runtime=res("index", "runtime"),
    shell:
        "python -m svar index --root {input} --manifest {output.manifest} --exclusions {output.exclusions}"
        " --classes {output.classes} --workers {threads} > {log} 2>&1"
