# The plan: each stage's jobs and estimated cost from measured rates (svar plan, svar/plan.py),
# for this config and this dataset's manifest; the report sets it beside what the jobs cost.


rule plan:
    input:
        manifest=rules.index.output.manifest,
    output:
        f"{RESULTS}/plan.csv",
    log:
        f"{RESULTS}/logs/plan.log",
    # arithmetic on a manifest: under SLURM on the submit host
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=plan_config,
        device=plan_device,
        rates=plan_rates,
    shell:
        "python -m svar plan --config-json {params.config:q} --manifest {input.manifest} --device {params.device}"
        " --out {output} > {log} 2>&1"
