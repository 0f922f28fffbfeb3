"""The packaged EfficientNet-Lite0 ImageNet weights, mapped into timm's efficientnet_lite0."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from timm.data import ImageNetInfo

from transfuse.testing import cpu_device
from transfuse_image import TimmOptions
from transfuse_image.encoder import TimmEncoder, image_transform
from transfuse_image.weights import default_weights_path, load_timm_model, read_state_dict

BUILDINGS = {
    "palace",
    "church, church building",
    "bell cote, bell cot",
    "monastery",
    "mosque",
    "stupa, tope",
    "castle",
    "dome",
    "triumphal arch",
}


@pytest.fixture(scope="module")
def china() -> Image.Image:
    """scikit-learn's bundled photo of a Chinese temple."""
    return Image.fromarray(load_sample_image("china.jpg"))


def test_all_247_tensors_of_the_packaged_file_map_onto_timm() -> None:
    source = read_state_dict(default_weights_path())
    tensors = [k for k in source if not k.endswith("num_batches_tracked")]
    assert len(tensors) == 247 and tensors[0] == "_conv_stem.weight"
    model = load_timm_model("efficientnet_lite0", "default", num_classes=1000)
    assert torch.equal(model.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(
        model.blocks[0][0].conv_dw.weight, source["_blocks.0._depthwise_conv.weight"]
    )
    assert torch.equal(model.classifier.bias, source["_fc.bias"])


def test_china_jpg_gets_a_building_in_its_top_5(china: Image.Image) -> None:
    model = load_timm_model("efficientnet_lite0", "default", num_classes=1000).eval()
    _, transform = image_transform(model)
    with torch.no_grad():
        top5 = model(transform(china).unsqueeze(0))[0].topk(5).indices.tolist()
    names = [ImageNetInfo().index_to_description(i) for i in top5]
    assert BUILDINGS & set(names), names
    assert names[0] in BUILDINGS, names  # and the best guess is one too (a palace)


def test_the_encoder_gives_the_classifiers_pre_logits_features(china: Image.Image) -> None:
    encoder = TimmEncoder(TimmOptions(), cpu_device())
    assert encoder.frozen and encoder.output_dim == 1280
    assert encoder.input_size == (3, 224, 224)
    classifier = load_timm_model("efficientnet_lite0", "default", num_classes=1000).eval()
    features = encoder(encoder.prepare(pd.Series([china])))
    with torch.no_grad():
        logits = classifier.classifier(features)
        expected = classifier(image_transform(classifier)[1](china).unsqueeze(0))
    assert torch.allclose(logits, expected, atol=1e-4)
