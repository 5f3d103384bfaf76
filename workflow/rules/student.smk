# Stage 4b — the student's initial weights: torchvision's, fetched once (student.pretrained).


# Downloads the torchvision weights student.pretrained names for student.arch (kinetics400: its
# Kinetics-400 weights; imagenet: ResNet-18's, which training inflates) into student.weights_dir,
# once, verified against the sha256 prefix of torchvision's file name. A local rule: under the
# SLURM profile it runs on the login node, which has internet; training jobs then read the folder
# offline. Only in the DAG when student.pretrained names torchvision's weights.
rule student_weights:
    output:
        STUDENT_WEIGHTS_RECEIPT,
    log:
        f"results/logs/student_weights/{Path(STUDENT_WEIGHTS_RECEIPT).stem}.log",
    localrule: True
    conda:
        "../envs/svar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        arch=config["student"]["arch"],
        pretrained=config["student"]["pretrained"],
        weights_dir=config["student"]["weights_dir"],
    shell:
        "python -m svar student-weights --arch {params.arch} --pretrained {params.pretrained:q}"
        " --weights-dir {params.weights_dir:q} --out {output} > {log} 2>&1"
