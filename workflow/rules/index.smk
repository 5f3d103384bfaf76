# Stage 2 — index: decode every video once; the manifest, the exclusions, the class list.


rule index:
    input:
        DATA,
    output:
        manifest=f"{RESULTS}/manifest.csv",
        exclusions=f"{RESULTS}/exclusions.csv",
        classes=f"{RESULTS}/classes.csv",
    log:
        f"{RESULTS}/logs/index.log",
    benchmark:
        job_benchmark("index")
    conda:
        "../envs/svar.yaml"
    threads: res("index", "threads")
    resources:
        mem_mb=res("index", "mem_mb"),
        runtime=lambda w: runtime_request("index"),
    params:
        # the lists and the videos they name: a video added to a list or a list edited reruns it
        reads=read_digest(index_inputs),
    shell:
        "python -m svar index --root {input:q} --manifest {output.manifest} --exclusions {output.exclusions}"
        " --classes {output.classes} --workers {threads} > {log} 2>&1"
