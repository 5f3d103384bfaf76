"""The datasets: the generated one and those built from official archives, one module each.

Each module of this package defines one `Dataset` (svar.datasets.base) and registers it in
`DATASETS`; this package imports every module in it, so adding a dataset is adding a module
(and its workflow config overlay). Everything ends up in UCF101's layout and split format.
One module registers nothing: `user`, which lays out the user's own videos (`dataset.root`: a
folder in that layout, or a CSV) under any other name.

The archives come from `svar download` (`fetch_archive`, over svar.download's HTTP), or from a
folder of archives already on disk (`dataset.archives_dir`) — on a cluster node without internet.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import shutil
from pathlib import Path

from ..download import ArchiveInfo, download, verify
from .base import DATASETS, Dataset, DatasetShape

log = logging.getLogger(__name__)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def dataset_folder(config: dict) -> str:
    """data/<this>: the folder of the config's dataset: a built-in one's (svar.datasets.base.
    Dataset.folder), or for the user's own (dataset.root, svar.datasets.user) its name."""
    dataset = config["dataset"]
    if dataset.get("root"):
        return dataset["name"]
    return DATASETS[dataset["name"]].folder(dataset)


def dataset_shape(config: dict, manifest_path=None) -> DatasetShape:
    """The dataset's shape: from its manifest when one exists, else from the config (the
    generated set's settings, a built-in dataset's published counts: Dataset.shape)."""
    split = int(config["dataset"]["split"])
    if manifest_path is not None and Path(manifest_path).exists():
        from ..manifest import load_manifest

        m = load_manifest(manifest_path)
        if f"split{split}" not in m.columns:
            have = [c.removeprefix("split") for c in m.columns if c.startswith("split") and c[5:].isdigit()]
            raise ValueError(f"dataset.split: {split}, but {manifest_path} has splits {', '.join(have)}")
        test = m[f"split{split}"] == "test"
        return DatasetShape(int((~test).sum()), int(test.sum()), float(m["frames"].mean()), int(m["width"].median()),
                            int(m["height"].median()), f"its manifest ({manifest_path})",
                            (m.loc[~test, "frames"].to_numpy(), m.loc[test, "frames"].to_numpy()))
    name = config["dataset"]["name"]
    if config["dataset"]["root"]:
        raise ValueError(f"dataset.root: your own videos have no known shape before `svar index` has run; run "
                         f"`snakemake {manifest_path or 'results/<name>/manifest.csv'}` first, then plan")
    shape = DATASETS[name].shape(config["dataset"]) if name in DATASETS else None
    if shape is None:
        raise ValueError(f"dataset.name: {name!r} has no published shape here; run `svar index` first, then plan")
    return shape


def known_archives() -> dict[str, ArchiveInfo]:
    """Every archive a registered dataset is built from, by file name."""
    return {info.filename: info for name in DATASETS for info in DATASETS[name].archives()}


def fetch_archive(name: str, archives_dir: str | os.PathLike | None = None,
                  download_dir: str | os.PathLike = "data/archives", progress: bool = True) -> Path:
    """Path to a verified copy of the known archive `name` (one a registered dataset is built
    from: known_archives()).

    An archive already in `archives_dir` (copied by hand, or from a shared disk) is verified
    and used as is, without touching the network; otherwise it is downloaded to `download_dir`.
    """
    known = known_archives()
    if name not in known:
        raise KeyError(f"unknown archive {name!r}; known: {', '.join(known)}")
    info = known[name]
    if archives_dir is not None:
        local = Path(archives_dir) / info.filename
        if local.exists():
            verify(local, info.checksums(), progress=progress,
                   advice=f"Replace it with the official {info.filename} ({info.url}), "
                          f"or remove it from {archives_dir} to download it.")
            return local
        log.info("%s is not in %s; downloading it", info.filename, archives_dir)
    return download(info.url, Path(download_dir) / info.filename, sha256=info.sha256, md5=info.md5,
                    sha256_prefix=info.sha256_prefix, sha256_suffix=info.sha256_suffix, progress=progress)


def archive_names() -> tuple[str, ...]:
    return tuple(known_archives())


def video_archive_names() -> tuple[str, ...]:
    """The values dataset.video_archive takes: "" (the dataset's default) or a video archive."""
    return ("", *(info.filename for name in DATASETS for info in DATASETS[name].video_archives))


def archive_paths(name: str, folder: str | os.PathLike, video_archive: str = "") -> list[Path]:
    """[video archive, split archive] of a dataset in `folder`; `video_archive` picks an alternative."""
    dataset: type[Dataset] = DATASETS[name]
    if dataset.generated:
        raise ValueError(f"dataset.name: {name} is generated by svar; it has no archives")
    videos = dataset.video_archives[0].filename
    if video_archive:
        choices = [info.filename for info in dataset.video_archives]
        if video_archive not in choices:
            raise ValueError(f"dataset.video_archive: {video_archive!r} does not hold {name}'s videos; "
                             f"choose from {choices}")
        videos = video_archive
    return [Path(folder) / videos, Path(folder) / dataset.split_archive.filename]


def prepare(name: str, archives: list[str | os.PathLike], out: str | os.PathLike, check: bool = True) -> Path:
    """Verify the archives' published digests, extract them, and lay out `out` (atomically)."""
    out = Path(out)
    if out.exists():
        log.info("%s exists; nothing to do", out)
        return out
    dataset: type[Dataset] = DATASETS[name]
    known = known_archives()
    videos_archive, splits_archive = map(Path, archives)
    for path in (videos_archive, splits_archive):
        if not path.exists():
            raise FileNotFoundError(f"{path}: archive missing; run `svar download` or set dataset.archives_dir")
        if check and path.name in known:
            verify(path, known[path.name].checksums(), progress=True)
    staging = out.with_name(f".{out.name}.partial")
    work = out.with_name(f".{out.name}.extracted")  # kept across interruptions: extraction resumes
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    dataset.lay_out(videos_archive, splits_archive, staging, work)
    staging.rename(out)
    shutil.rmtree(work)
    return out


def prepare_extracted(name: str, folder: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Lay out `out` (atomically) from a folder where the dataset's archives are already extracted
    (dataset.extracted_dir): its split files converted, its videos linked, not copied."""
    out, folder = Path(out), Path(folder).expanduser()
    if out.exists():
        log.info("%s exists; nothing to do", out)
        return out
    dataset: type[Dataset] = DATASETS[name]
    if dataset.generated:
        raise ValueError(f"dataset.extracted_dir: {name} is generated by svar; it has no archives to have extracted")
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset.extracted_dir: {folder} is not a folder; point it at the folder holding "
                                f"{name}'s extracted archives, or set it to \"\" to extract the archives")
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    dataset.lay_out_extracted(folder, staging)
    staging.rename(out)
    return out
