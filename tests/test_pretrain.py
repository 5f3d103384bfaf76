"""The generated dataset's teacher: CLIP-style training lowers the contrastive loss, and the
checkpoint loads through open_clip's own entry point like any pretrained file."""

import open_clip
import torch

from svar.teacher.pretrain import pretrain
from svar.teacher.openclip_teacher import encode_text
from svar.teacher.weights import register_model_configs


def test_contrastive_loss_falls_and_checkpoint_round_trips(tiny_dataset, tmp_path):
    ckpt = tmp_path / "teacher.pt"
    losses = pretrain(tiny_dataset / "pretrain", ckpt, steps=25, batch_size=12, lr=2e-3, seed=0, device="cpu",
                      curve_out=tmp_path / "curve.csv")
    assert len(losses) == 25
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert len((tmp_path / "curve.csv").read_text().splitlines()) == 26

    register_model_configs()
    model, _, preprocess = open_clip.create_model_and_transforms("svar-tiny-clip", pretrained=str(ckpt))
    saved = torch.load(ckpt, weights_only=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[name]), name
    # zero-shot prompts work with it
    text = encode_text(model.eval(), open_clip.get_tokenizer("svar-tiny-clip"),
                       ["RedSquareMovingLeft", "BlueCircleGrowing"], ("a {}.",), torch.device("cpu"))
    assert text.shape == (2, 64)
    assert not torch.allclose(text[0], text[1])
