"""What a teacher backend is (svar.teacher.backends lists them and picks one): the registry and
the two interfaces each backend implements, `TeacherBackend` (its models and weights) and
`LoadedTeacher` (a loaded model, encoding videos and prompts)."""

from __future__ import annotations

import torch

from ..registry import Registry

TEACHER_BACKENDS = Registry("teacher backend", "teacher.backend")


class LoadedTeacher:
    """A teacher ready to encode: `preprocess` ({size, mean, std}: the square input size and the
    normalisation its frames get, svar.teacher.preprocess), `logit_scale`, and the encoders."""

    preprocess: dict
    logit_scale: float
    device: torch.device

    def rows_per_video(self, spec: dict) -> int:
        """Store rows of one video under a sampling spec (the k of frame_features [N, k, D])."""
        raise NotImplementedError

    def encode_text(self, class_names, templates):
        """The class prompts, encoded once per job; `.embeddings` is the store's text_embeddings
        [C, D] (each template filled with the class's words, normalised, averaged, normalised)."""
        raise NotImplementedError

    def encode_videos(self, x: torch.Tensor, n_videos: int, spec: dict, text) -> dict:
        """Normalised frames [n_videos * frames a video, 3, S, S] on the device -> the store's
        per-video tensors of these videos, float32 on the device: `frame_features` [n, k, D] and
        whatever else the backend stores per video (svar.teacher.store.PER_VIDEO_KEYS)."""
        raise NotImplementedError

    def feature_dim(self) -> int:
        raise NotImplementedError

    def no_videos(self, k_row: int, n_classes: int) -> dict:
        """The per-video tensors of no video (a shard with none): [0, k_row, D] features."""
        return {"frame_features": torch.zeros(0, k_row, self.feature_dim(), dtype=torch.float16)}


class TeacherBackend:
    """A registered backend: `name` (the prefix of its model names, `teacher.backend`'s value)
    and what it knows of its models and weights. `model` below is the name without the prefix."""

    name: str = ""
    models: str = ""  # what teacher.model names for it, in words (errors and help)
    small_model: str = ""  # svar's own small config of it, random weights: tests and benches without downloads

    def weights_source(self, model: str, pretrained: str | None) -> str:
        """random, file (a path in `pretrained`), local-dir (a folder in the model name), tag or
        hf-hub (downloaded by rule teacher_weights into teacher.cache_dir)."""
        raise NotImplementedError

    def files(self, model: str, pretrained: str | None, cache_dir) -> list:
        """The WeightFiles (svar.weights_files) downloaded for it; none for local or random weights."""
        raise NotImplementedError

    def fetch(self, model: str, pretrained: str | None, cache_dir) -> str | None:
        """Download the weights into cache_dir; the file or folder the offline load then reads."""
        raise NotImplementedError

    def problems(self, model: str, pretrained: str, key: str) -> list[str]:
        """What is wrong with a model and weights (`key`: where the config gives them)."""
        raise NotImplementedError

    def frames(self, model: str, cache_dir) -> int | None:
        """The frames a clip the model takes (teacher.sampling.frames must be it); None: any."""
        return None

    def sampling_problems(self, model: str, spec: dict, cache_dir, key: str = "teacher") -> list[str]:
        """What is wrong with a sampling spec for this model: frames a clip other than its own."""
        frames = self.frames(model, cache_dir)
        if frames is not None and spec["frames"] != frames:
            return [f"{key}.sampling.frames: {spec['frames']}, but {self.name}:{model} integrates {frames} frames a "
                    f"clip (its config's num_frames); set {key}.sampling.frames: {frames}"]
        return []

    def load(self, model: str, pretrained: str | None, device: torch.device, cache_dir=None,
             offline: bool | None = None) -> LoadedTeacher:
        raise NotImplementedError
