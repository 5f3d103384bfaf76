# Stage 4b — clip cache: the frames every train and evaluate job reads, decoded once per
# (dataset, part, cache options) and read memory-mapped by those jobs (svar/clips/: shards.py
# builds a shard, receipt.py gathers them, store.py reads them).
# Part train: the videos outside the test list; part test: the test list. Only in the DAG with
# clip_cache.mode shared and a method that trains a student.


# One shard of a part's videos (every clip_cache.shards-th one), resumable chunk by chunk.
rule clip_cache_shard:
    input:
        manifest=rules.index.output.manifest,
    output:
        frames=clip_cache_shard_file("{part}", "{shard}", "{shards}"),
        index=clip_cache_shard_file("{part}", "{shard}", "{shards}", "index.npz"),
    log:
        f"{RESULTS}/logs/clip_cache/{{part}}/shard_{{shard}}_of_{{shards}}.log",
    benchmark:
        job_benchmark("clip_cache_shard", "{part}/shard_{shard}_of_{shards}")
    conda:
        "../envs/svar.yaml"
    threads: res("clip_cache", "threads")
    resources:
        mem_mb=res("clip_cache", "mem_mb"),
        runtime=lambda w: runtime_request("clip_cache"),
    params:
        options=clip_cache_options,
    shell:
        "python -m svar clip-cache --manifest {input.manifest} --part {wildcards.part} --options {params.options:q}"
        " --shard {wildcards.shard} --shards {wildcards.shards} --workers {threads}"
        " --memory-mb {resources.mem_mb} --out {output.frames} > {log} 2>&1"


# The receipt train and evaluate take as input: the shards, checked complete and of one cache.
rule clip_cache:
    input:
        clip_cache_shards,
    output:
        receipt=clip_cache_receipt("{part}"),
        # the receipt's record (size, checksum), written by svar with it: see clip_cache_receipt_record
        record=clip_cache_receipt_record("{part}"),
    log:
        f"{RESULTS}/logs/clip_cache/{{part}}.log",
    # reads a few index files: not worth a job in a queue
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python -m svar clip-cache-gather {input} --out {output.receipt} > {log} 2>&1"
