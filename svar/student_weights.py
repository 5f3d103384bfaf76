"""A student's initial weights (student.pretrained): scratch, torchvision's, or a file.

- `none`: random initialisation (scratch).
- `kinetics400`: the Kinetics-400 weights torchvision publishes for the arch.
- `imagenet`: torchvision's ImageNet ResNet-18 inflated I3D-style into r3d_18 or mc3_18: each 2D
  kernel [O, I, k, k] repeated over the 3D kernel's time extent t and divided by t, so that a
  clip of one image repeated gives the 2D network's response to that image. For
  vit_b16_divided, timm's ImageNet ViT-B/16 as TimeSformer starts from it
  (svar.students_vit.from_image_weights): the video model starts as the 2D model frame by frame.
- a path: a state dict (torchvision's layout works, its classifier dropped; so does a svar
  model.pt: its backbone and input normalisation are taken).

torchvision's and timm's weights are fetched once, where there is internet, by rule
student_weights (`svar student-weights`, or `svar fetch-weights` for a whole config) into
student.weights_dir: torchvision's under their own file name, timm's from the Hugging Face hub as
`<weights_dir>/<hub repo>/model.safetensors` (or copied there by hand: `svar fetch-weights
--list`); training jobs read them from there and never touch the network (they never ask
torchvision, torch.hub, timm or the hub for weights). torchvision's file names carry the first
hex digits of the file's sha256, checked after the download and again when a run reads the file
(timm's registry publishes no digest: the receipt records the file's). Every file is read as
tensors only, safetensors or `torch.load(weights_only=True)`: a file that holds pickled objects
other than tensors is refused, and its code never runs. `build_student` says in `Student.init` how
the backbone started, which the run's checkpoint records (meta student_init).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import torch

from .config import default
from .students import STUDENTS, Student, StudentArch, torchvision_weights
from .students_vit import from_image_weights
from .weights_files import WeightFile

log = logging.getLogger(__name__)

SCRATCH, KINETICS400, IMAGENET = "none", "kinetics400", "imagenet"
# student.pretrained's names for torchvision's weights, which rule student_weights fetches
NAMED = (KINETICS400, IMAGENET)
RULE = "student_weights"


def pretrained_source(pretrained: str) -> str:
    """"scratch", "kinetics400", "imagenet" or "file" (a path to a state dict)."""
    if pretrained in ("", SCRATCH):
        return "scratch"
    return pretrained if pretrained in NAMED else "file"


def pretrained_keys(config: dict) -> tuple[str, ...]:
    """The config keys a run's initial weights depend on: student.pretrained, and the folder
    torchvision's weights are read from when it names them."""
    named = pretrained_source(config["student"]["pretrained"]) in NAMED
    return ("student.pretrained",) + (("student.weights_dir",) if named else ())


def pretrained_problems(arch: str, pretrained: str) -> list[str]:
    """Why student.pretrained cannot initialise student.arch (none when it can)."""
    spec: StudentArch = STUDENTS[arch]
    source = pretrained_source(pretrained)
    if source == KINETICS400 and spec.kinetics400 is None:
        having = [name for name, s in STUDENTS.items() if s.kinetics400]
        return [f"student.pretrained: torchvision publishes no Kinetics-400 weights for {arch}; those archs "
                f"have them: {', '.join(having)} (or use none)"]
    if source == IMAGENET and spec.imagenet is None and spec.timm_imagenet is None:
        inflated = [name for name, s in STUDENTS.items() if s.imagenet]
        vits = [name for name, s in STUDENTS.items() if s.timm_imagenet]
        return [f"student.pretrained: imagenet inflates ResNet-18's 2D ImageNet kernels into {', '.join(inflated)}, "
                f"whose convolutions are ResNet-18's with a time extent added, and starts {', '.join(vits)} from "
                f"timm's 2D ImageNet ViT; {arch}'s layers do not map onto them (factorised, another network or "
                "attention). Use kinetics400 or none for it"]
    if source == "file" and not os.path.isfile(pretrained):
        return [f"student.pretrained: {pretrained!r} is neither none, kinetics400, imagenet nor an existing "
                "state-dict file; fix the path"]
    return []


def student_problems(config: dict) -> list[str]:
    """What the schema cannot see of the student: its initial weights fit its arch (svar.config)."""
    student = config["student"]
    if student["arch"] not in STUDENTS:  # the schema names it
        return []
    return pretrained_problems(student["arch"], student["pretrained"])


# --------------------------------------------------------------------------- torchvision's files


def weights_name(arch: str, pretrained: str) -> str:
    """The weights student.pretrained names for arch: torchvision's enum name
    ("R3D_18_Weights.KINETICS400_V1") or timm's pretrained name ("vit_base_patch16_224.<tag>")."""
    if pretrained_source(pretrained) not in NAMED:
        raise ValueError(f"student.pretrained: {pretrained!r} names no published weights; those are "
                         f"{' and '.join(NAMED)} (a file or none needs no download)")
    problems = pretrained_problems(arch, pretrained)
    if problems:
        raise ValueError(problems[0])
    spec = STUDENTS[arch]
    return spec.kinetics400 if pretrained_source(pretrained) == KINETICS400 else spec.imagenet or spec.timm_imagenet


def from_timm(arch: str, pretrained: str) -> bool:
    """Whether student.pretrained names timm's weights for arch (else torchvision's)."""
    return pretrained_source(pretrained) == IMAGENET and STUDENTS[arch].timm_imagenet is not None


def weights_url(name: str) -> str:
    """Where torchvision publishes the named weights."""
    return torchvision_weights(name).url


def hash_prefix(url: str) -> str:
    """The first hex digits of the file's sha256, from its name (torch.hub's convention)."""
    from torch.hub import HASH_REGEX

    match = HASH_REGEX.search(os.path.basename(url))
    if not match or not match.group(1):
        raise ValueError(f"{url}: the file name carries no sha256 prefix (NAME-<hex>.pth)")
    return match.group(1)


def describe(arch: str, pretrained: str) -> str:
    """The weights student.pretrained names for arch, in words."""
    name = weights_name(arch, pretrained)
    if from_timm(arch, pretrained):
        return f"timm's ImageNet weights {name} (its spatial layers in {arch})"
    if pretrained_source(pretrained) == KINETICS400:
        return f"torchvision's {arch} Kinetics-400 weights ({name})"
    return f"torchvision's ResNet-18 ImageNet weights ({name}, inflated into {arch})"


def timm_file(arch: str, pretrained: str, weights_dir) -> WeightFile:
    """The file of timm's weights for (arch, pretrained): the Hugging Face hub file timm loads
    them from, in <weights_dir>/<hub repo>/ (as the teacher's hub files lie in teacher.cache_dir),
    safetensors first, as timm tries them (timm.models._hub.load_state_dict_from_hf)."""
    from huggingface_hub import hf_hub_url
    from timm.models import get_pretrained_cfg
    from timm.models._hub import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    name = weights_name(arch, pretrained)
    repo = get_pretrained_cfg(name).hf_hub_id
    names = (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
    return WeightFile("student.pretrained", "student.weights_dir", describe(arch, pretrained),
                      Path(weights_dir) / repo, names, hf_hub_url(repo, names[0]), repo=repo, rule=RULE)


def student_files(arch: str, pretrained: str, weights_dir) -> list[WeightFile]:
    """The file of the weights for (arch, pretrained): timm's (`timm_file`), or torchvision's in
    weights_dir under torchvision's own file name, whose NAME-<hex>.pth carries the first hex
    digits of its sha256."""
    if from_timm(arch, pretrained):
        return [timm_file(arch, pretrained, weights_dir)]
    url = weights_url(weights_name(arch, pretrained))
    return [WeightFile("student.pretrained", "student.weights_dir", describe(arch, pretrained), Path(weights_dir),
                       (os.path.basename(url),), url, sha256=hash_prefix(url), rule=RULE)]


def cached_file(arch: str, pretrained: str, weights_dir) -> Path:
    """Where the weights for (arch, pretrained) lie in weights_dir: under the first of their names
    that is there, else where the first would go."""
    entry = student_files(arch, pretrained, weights_dir)[0]
    return entry.placed() or entry.path


def check_file(path: Path, arch: str, pretrained: str) -> str:
    """The sha256 of the file in student.weights_dir, which must start with the digits its name
    carries (torchvision's published prefix); a file that does not is named for what it is."""
    from .download import file_digests

    entry = student_files(arch, pretrained, path.parent)[0]
    sha256 = file_digests(path, ["sha256"])["sha256"]
    if not sha256.startswith(entry.sha256):
        raise ValueError(f"{entry.key}: {os.path.abspath(path)} does not match the published sha256 prefix of "
                         f"{entry.what} (in {entry.folder_key}): expected {entry.sha256}…, got {sha256}; it is "
                         f"corrupt, cut short or another file. Copy it again from {entry.url}")
    return sha256


def fetch(arch: str, pretrained: str, weights_dir, progress: bool = True) -> Path:
    """Download the weights for (arch, pretrained) into weights_dir: torchvision's verified against
    the sha256 prefix of their name, timm's from the hub as the teacher's hub files are fetched; a
    file already there is kept (torchvision's verified first; no network). A machine that cannot
    download says so at once, with the URL and the file to copy by hand."""
    from .download import download, offline_reason

    entry = student_files(arch, pretrained, weights_dir)[0]
    if entry.repo:
        from .teacher.weights import fetch_file

        return fetch_file(entry)
    if entry.path.exists():
        check_file(entry.path, arch, pretrained)
        return entry.path
    reason = offline_reason(entry.url)
    if reason:
        raise entry.unreachable(reason)
    return download(entry.url, entry.path, sha256_prefix=entry.sha256, progress=progress, what=entry.what,
                    by_hand=entry.by_hand())


def weights_receipt(arch: str, pretrained: str, weights_dir, out) -> dict:
    """Fetch the weights (`fetch`) and write a receipt: which torchvision weights, from where, the
    file and its sha256. Rule student_weights's output, which rule train depends on, so that the
    download happens once, where there is internet, before any training job starts."""
    from .atomic import write_json
    from .download import file_digests

    name = weights_name(arch, pretrained)
    path = fetch(arch, pretrained, weights_dir)
    receipt = {"arch": arch, "pretrained": pretrained, "weights": name,
               "url": student_files(arch, pretrained, weights_dir)[0].url,
               "file": str(path), "bytes": path.stat().st_size, "sha256": file_digests(path, ["sha256"])["sha256"]}
    write_json(out, receipt)
    log.info("student weights of %s / %s: %s in %s", arch, pretrained, name, path)
    return receipt


# --------------------------------------------------------------------------- reading weights


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (weights only: a file holding other pickled objects is refused
    and none of its code runs; a .safetensors file holds nothing else). A svar checkpoint or
    {"state_dict": ...} gives its state dict."""
    from .teacher.weights import _unsafe_pickle

    if str(path).endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except SafetensorError as exc:
            raise ValueError(f"student.pretrained: {path} cannot be read as safetensors ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if _unsafe_pickle(exc):
            raise ValueError(
                f"student.pretrained: {path} holds objects that are not tensors; svar loads weights only "
                "(torch.load weights_only=True) and never runs code from a file. Save a plain state dict "
                "(torch.save(model.state_dict(), ...)) instead") from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"student.pretrained: {path} cannot be read as a state dict ({reason})") from exc
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"student.pretrained: {path} is not a state dict (a dict of tensors, or one under "
                         "'state_dict')")
    return state


def _fit(backbone: torch.nn.Module, state: dict, path, drop: str = "") -> dict:
    """state as the backbone's own state dict, the keys of torchvision's classifier `drop` left
    out; anything else that differs is an error naming the file and the first keys that differ."""
    if drop:
        state = {k: v for k, v in state.items() if k.split(".", 1)[0] != drop}
    own = backbone.state_dict()
    problems = [f"{k} missing" for k in own if k not in state]
    problems += [f"{k} unexpected" for k in state if k not in own]
    problems += [f"{k} {tuple(state[k].shape)} where {type(backbone).__name__} has {tuple(own[k].shape)}"
                 for k in own if k in state and state[k].shape != own[k].shape]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ValueError(f"student.pretrained: {path} does not fit the student's backbone ({len(problems)} "
                         f"keys differ: {shown}); give weights of this student.arch")
    return state


# ResNet-18's names -> VideoResNet's, whose BasicBlock holds each conv and its BN in one Sequential
_RESNET_TO_VIDEO = ((r"^conv1\.", "stem.0."), (r"^bn1\.", "stem.1."),
                    (r"^(layer\d\.\d)\.conv(\d)\.", r"\1.conv\2.0."), (r"^(layer\d\.\d)\.bn(\d)\.", r"\1.conv\2.1."))


def inflate(state2d: dict, backbone: torch.nn.Module, path="the 2D weights") -> dict:
    """A 2D ResNet-18 state dict as the state dict of an r3d_18 / mc3_18 backbone (I3D inflation).

    A 2D kernel [O, I, k, k] becomes [O, I, t, k, k] (the 3D kernel's time extent t), repeated
    over time and divided by t: on a clip whose frames are one image, the 3D conv's response
    away from the clip's ends is the 2D conv's on that image. BN and the 1×1 downsampling convs
    map one to one; the 1000-class ImageNet classifier (fc) is dropped: the student has its own
    head, as with Kinetics weights.
    """
    own = backbone.state_dict()
    out = {}
    for key, value in state2d.items():
        if key.startswith("fc."):
            continue
        for pattern, replacement in _RESNET_TO_VIDEO:
            key = re.sub(pattern, replacement, key)
        if key in own and value.dim() == 4 and own[key].dim() == 5:
            t = own[key].shape[2]
            value = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        out[key] = value
    return _fit(backbone, out, path)


def require_file(arch: str, pretrained: str, path: Path) -> None:
    """The published weights student.pretrained names, at `path`, must be there: else the error
    naming the file, its folder key, the command that fetches it and the URL to copy it from."""
    if path.is_file():
        return
    if from_timm(arch, pretrained):  # timm's file, in the folder `path` names
        raise dataclasses.replace(timm_file(arch, pretrained, ""), folder=path.parent).missing("training")
    raise student_files(arch, pretrained, path.parent)[0].missing("training")


def load_pretrained(student: Student, pretrained: str, path) -> str:
    """Load student.pretrained, read from `path` (`resolve_file`), into the student's backbone and
    set its input normalisation; returns how it was initialised, as Student.init says it."""
    from .download import file_digests

    arch, spec = student.arch, STUDENTS[student.arch]
    source = pretrained_source(pretrained)
    if source == "scratch":
        return "scratch"
    path = Path(path)
    head = getattr(student.backbone, "HEAD", "")
    if source == "file":
        if not path.is_file():
            raise FileNotFoundError(f"student.pretrained: {path}: no such state-dict file")
        sha256 = file_digests(path, ["sha256"])["sha256"]
        state = read_state_dict(path)
        if any(k.startswith("backbone.") for k in state):
            # a whole Student's (a svar model.pt): its backbone, and the input normalisation it learnt with
            if state.get("mean") is not None and state.get("std") is not None:
                student.set_normalisation(state["mean"].flatten().tolist(), state["std"].flatten().tolist())
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        student.backbone.load_state_dict(_fit(student.backbone, state, path, head))
        return f"file {path} (sha256 {sha256})"

    name = weights_name(arch, pretrained)
    if from_timm(arch, pretrained):
        require_file(arch, pretrained, path)
        sha256 = file_digests(path, ["sha256"])["sha256"]
        state = from_image_weights(read_state_dict(path), student.backbone)
        student.backbone.load_state_dict(_fit(student.backbone, state, path))
        student.set_normalisation(*spec.normalisation(pretrained))
        return f"imagenet: timm {name}, its spatial layers in {arch} (sha256 {sha256})"
    require_file(arch, pretrained, path)
    sha256 = check_file(path, arch, pretrained)
    state = read_state_dict(path)
    if source == KINETICS400:
        student.backbone.load_state_dict(_fit(student.backbone, state, path, head))
        described = f"kinetics400: torchvision {name} (sha256 {sha256})"
    else:
        student.backbone.load_state_dict(inflate(state, student.backbone, path))
        described = f"imagenet: torchvision {name} inflated into {arch} (sha256 {sha256})"
    student.set_normalisation(*spec.normalisation(pretrained))
    return described


def resolve_file(student_options: dict) -> Path | None:
    """The weights file a run with these student options reads (None from scratch)."""
    pretrained = student_options.get("pretrained", default("student.pretrained"))
    source = pretrained_source(pretrained)
    if source == "scratch":
        return None
    if source == "file":
        return Path(pretrained)
    weights_dir = student_options.get("weights_dir", default("student.weights_dir"))
    return cached_file(student_options["arch"], pretrained, weights_dir)


def build_student(student_options: dict, num_classes: int, teacher_dim: int, weights_file=None) -> Student:
    """The student a run trains: student.arch, initialised as student.pretrained says (from
    weights_file, when given, else from where `resolve_file` finds it); `init` says how."""
    arch = student_options["arch"]
    pretrained = student_options.get("pretrained", default("student.pretrained"))
    path = weights_file or resolve_file(student_options)
    if pretrained_source(pretrained) in NAMED:
        require_file(arch, pretrained, Path(path))  # at once, before building the model (a ViT-B takes seconds)
    student = Student(arch, num_classes, teacher_dim)
    with torch.no_grad():
        student.init = load_pretrained(student, pretrained, path)
    native = STUDENTS[arch].native_input
    frames, size = student_options.get("frames"), student_options.get("size")
    if pretrained_source(pretrained) == KINETICS400 and native and frames and (frames, size) != native:
        log.info("%s: its Kinetics-400 weights were measured on %d×%d-pixel clips of %d frames; this run's are "
                 "%d×%d of %d (student.size, student.frames)", arch, native[1], native[1], native[0], size, size,
                 frames)
    log.info("student %s: %s", arch, student.init)
    return student
