"""Equal updates by different routes: gradient accumulation, and the image-feature cache.

* The default path (no --per_device_train_batch_size, no --gradient_accumulation_steps: batch 1 x accumulation 4,
  the seed recipe) must make the same updates as batch 4 x accumulation 1 on the same lines: the same loss at every
  step and the same adapter. The lines differ a lot in length, so an accumulation that averages each micro-batch's
  mean loss (instead of weighting every target token alike) or scales the sum wrongly gives a different update.
* The default run caches each line image's features (the encoder is frozen under LoRA) and reads them from the
  cache in the second epoch; with --image_feature_cache_mb 0 every step encodes its images again. Both must train
  alike: a cache that hands back another image's features (a key collision, a row mix-up) changes the loss. All
  images are the same size, so only their pixels can tell them apart.

LoRA dropout is off so that the routes draw no different random masks.
"""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import train
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

# Eight lines of 1 to 7 words: target lengths from 2 to ~25 tokens.
LINES = ["घर", "भारत एक बड़ा देश है और यहाँ बहुत लोग", "पानी", "किताब पढ़ो", "सुबह की चाय अच्छी लगती है",
         "नदी", "मेरा नाम राम है", "आज मौसम बहुत अच्छा है पर कल बारिश होगी"]
CROP = (360, 40)
STEPS = 4  # 16 lines: two epochs of 8, the second read from the feature cache
COMMON = ["--max_steps", str(STEPS), "--learning_rate", "3e-3", "--lora_dropout", "0", "--seed", "3",
          "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "1",
          "--max_target_tokens", "40", "--dataset_options", "validation_ratio=0,test_ratio=0"]
# Measured: accumulation 4 and batch 4 differ by 7e-8 (relative) in the loss and 4e-6 in the adapter (float
# rounding); averaging each micro-batch's mean instead gives 4x the loss and moves the adapter by 1.5e-2, and a
# cache key blind to the pixels moves the loss by 7e-4 (relative). Cache on and off are bit-identical (README).
LOSS_RTOL, ADAPTER_ATOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("accumulation")
    model = build_tiny_model(work / "tiny")
    data = write_line_folder(work / "lines", LINES, size=20)
    for path in (data / "output_images").glob("*.png"):  # fixed-size crops, as a scanner's line cutter gives:
        line = Image.open(path)  # only the pixels tell the images apart
        canvas = Image.new(line.mode, CROP, "white")
        canvas.paste(line, (0, 0))
        canvas.save(path)

    def run(name, *extra):
        out = work / name
        train.main(["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out),
                    *COMMON, *extra])
        state = json.loads((out / "trainer_state.json").read_text())
        losses = [record["loss"] for record in state["log_history"] if "loss" in record]
        return losses, load_file(out / "adapter_model.safetensors"), state

    return {
        "default": run("default"),  # batch 1 x accumulation 4, cache on
        "batch4": run("batch4", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1"),
        "no_cache": run("no_cache", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
                        "--image_feature_cache_mb", "0"),
    }


def assert_same_updates(got, want, loss_rtol=LOSS_RTOL, adapter_atol=ADAPTER_ATOL):
    (got_loss, got_adapter, _), (want_loss, want_adapter, _) = got, want
    assert len(got_loss) == len(want_loss) == STEPS
    assert got_loss == pytest.approx(want_loss, rel=loss_rtol, abs=0)
    assert got_adapter.keys() == want_adapter.keys()
    for name in want_adapter:
        torch.testing.assert_close(got_adapter[name], want_adapter[name], rtol=0, atol=adapter_atol, msg=name)


def test_default_accumulation_4_equals_batch_4(runs):
    default_state = runs["default"][2]
    assert default_state["global_step"] == STEPS and default_state["epoch"] == pytest.approx(2.0)
    assert_same_updates(runs["default"], runs["batch4"])
    # The tolerance tells updates apart: every step moved the loss by more than it.
    losses = runs["batch4"][0]
    assert min(abs(a - b) / b for a, b in zip(losses, losses[1:])) > 10 * LOSS_RTOL


def test_cached_image_features_train_like_encoding_every_step(runs):
    assert_same_updates(runs["batch4"], runs["no_cache"], loss_rtol=0, adapter_atol=0)
