# What the workflow checks before it schedules anything (svar/guard.py): outputs damaged after
# they were written, found by their records (svar/receipts.py) and turned into something
# Snakemake acts on. Included by common.smk; called by the Snakefile (guard_outputs()).


def clip_cache_receipt_record(part):
    """The receipt's record (svar.receipts), a second output of rule clip_cache, which rule all
    asks for; guard_outputs removes it when a shard is missing or changed, so that Snakemake runs
    the gather (and the shard job it needs) again, and the jobs that read the part."""
    from svar.receipts import record_path

    return str(record_path(clip_cache_receipt(part)))


def clip_cache_records():
    """Every clip cache receipt's record the grid makes: those of the parts its methods that
    train a model on clips read (the student's, clip_finetune's own) under clip_cache.mode shared;
    none otherwise (then no job reads the cache)."""
    if CLIP_CACHE["mode"] != "shared":
        return []
    parts = dict.fromkeys(
        method_cache_part(method, videos)
        for method in config["methods"]
        if METHODS[method].trains_student
        for videos in CLIP_CACHE_VIDEOS
    )
    return [clip_cache_receipt_record(part) for part in parts]


def guard_outputs():
    """Existing outputs that were damaged after they were written (they are written atomically:
    a truncated one was cut short later; each has a record of its size and checksum: one of
    another size, or changed in place, differs from it), found before any job is scheduled. A
    run's file or a table is moved aside, so that it is made again, and what reads it remade; a
    clip cache shard is moved aside and its receipt made stale, so that the shard and the gather
    are rebuilt (and no run that reads the cache: its pixels are the same); the teacher's files
    are named and the run stops, since rebuilding one reruns every training run that reads it."""
    from types import SimpleNamespace

    from snakemake.exceptions import WorkflowError
    from snakemake.logging import logger

    from svar import guard
    from svar.readers import is_intact
    from svar.receipts import check

    shared = {rules.teacher.output[0].format(root=root): ("teacher feature store", "teacher") for root in ROOTS}
    for root in ROOTS:
        shared.update({path: ("teacher shard", "teacher_shard") for path in teacher_shards(None, root)})
    if TEACHER["pretrained"] == "generated":
        shared[TEACHER_PRETRAINED] = ("generated dataset's teacher", "pretrain_teacher")
    # records are compared by the main process only: a job's own parse (SLURM) runs beside other jobs
    main = workflow.is_main_process
    for path, (what, rule) in shared.items():
        if not os.path.exists(path):
            continue
        how = "corrupt or truncated" if not is_intact(path) else check(path, checksum=False) if main else None
        if how:
            raise WorkflowError(
                f"{path}: the {what} is {how}. Remaking it reruns every job downstream of it, "
                f"so svar does not do that by itself: delete it and rerun (rule {rule} makes it again), or "
                "restore it (dvc checkout)"
            )
    # parsing runs no executor yet: the output settings say whether this is a dry run
    dry_run = workflow.output_settings is not None and workflow.output_settings.dryrun or not main
    for path in all_runs("model.pt"):
        if os.path.exists(path) and not is_intact(path):
            guard.move_aside(path, "corrupt or truncated", "train", logger.warning, dry_run)
    if main:
        parts = [
            (clip_cache_receipt(part), clip_cache_receipt_record(part), clip_cache_shards(SimpleNamespace(part=part)))
            for part in CLIP_CACHE_PARTS
        ]
        guard.guard_clip_cache(parts, logger.warning, dry_run)
        guard.guard_records(RESULTS, [*shared, f"{RESULTS}/clip_cache"], logger.warning, dry_run)
