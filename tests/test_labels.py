"""The label layout of a real training batch: what the loss supervises.

The batch comes from the Trainer's own train dataloader (train.py's flags, the dataset builder on rendered lines,
the collator in hindi_ocr/examples.py). Every token of the target text and the closing ``<|im_end|>`` must carry
its own id as label; nothing of the prompt (system turn, image tokens, ``OCR: ``, assistant turn) or of the
right padding may. The first target token is the classic off-by-one: a mask that starts one column late still
trains, and still reads, just worse. The loss the model computes must also be the mean over exactly these tokens.
"""

import pytest
import torch
from PIL import Image

from hindi_ocr.arguments import parse_args
from hindi_ocr.examples import END_OF_TURN, IGNORE_INDEX, image_key
from hindi_ocr.render import write_line_folder
from hindi_ocr.text import normalize_text
from hindi_ocr.tiny import build_tiny_model
from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

# Three lengths, so that two rows are right-padded; a nukta, a conjunct and an i-matra among them.
LINES = ["घर", "किताब पढ़ो और सो जाओ", "क्षेत्र बड़ा है"]


@pytest.fixture(scope="module")
def batch_and_trainer(tmp_path_factory):
    work = tmp_path_factory.mktemp("labels")
    model = build_tiny_model(work / "tiny")
    data = write_line_folder(work / "lines", LINES, size=20)
    model_args, data_args, lora_args, training_args = parse_args(
        ["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(work / "out"),
         "--dataset_options", "validation_ratio=0,test_ratio=0", "--per_device_train_batch_size", str(len(LINES)),
         "--report_to", "none", "--max_steps", "1", "--eval_strategy", "no"])
    splits = load_datasets(data_args)
    model, processor = build_model_and_processor(model_args, lora_args, training_args, max_new_tokens=32)
    trainer = build_trainer(model, processor, splits, data_args, training_args)
    batch = next(iter(trainer.get_train_dataloader()))
    # Which line each row holds, from the image (the sampler shuffles): the batch's content keys.
    texts = {image_key(row["image"]): row["text"] for row in splits["train"]}
    return batch, [texts[key] for key in batch["image_keys"]], trainer, processor


def test_every_target_token_and_end_of_turn_is_supervised_and_nothing_else(batch_and_trainer):
    batch, texts, _, processor = batch_and_trainer
    tokenizer = processor.tokenizer
    assert sorted(texts) == sorted(LINES)
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    # The prompt GOT's processor writes for a line image (any image: the prompt is the same for every line).
    prompt = processor(images=[Image.new("RGB", (200, 30), "white")], return_tensors="pt")["input_ids"][0]
    width = batch["input_ids"].shape[1]
    for row, text in enumerate(texts):
        target = tokenizer(normalize_text(text), add_special_tokens=False)["input_ids"] + [end_id]
        start, end = len(prompt), len(prompt) + len(target)
        labels, ids, mask = (batch[k][row].tolist() for k in ("labels", "input_ids", "attention_mask"))
        assert ids[:start] == prompt.tolist(), row
        assert labels == [IGNORE_INDEX] * start + target + [IGNORE_INDEX] * (width - end), row
        assert labels[start] == target[0] != IGNORE_INDEX and labels[start - 1] == IGNORE_INDEX  # the off-by-one
        assert ids[start:end] == target and mask == [1] * end + [0] * (width - end), row
        supervised = [t for t in labels if t != IGNORE_INDEX]
        assert tokenizer.decode(supervised) == text + END_OF_TURN
    assert width == len(prompt) + max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in LINES) + 1


def test_the_loss_is_the_mean_over_the_supervised_tokens(batch_and_trainer):
    """The model shifts labels by one inside its loss: position t's logits predict the label at t + 1. The loss
    the Trainer trains on must be the mean cross-entropy over exactly the target tokens and <|im_end|>."""
    batch, texts, trainer, _ = batch_and_trainer
    model = trainer.model.eval()
    with torch.no_grad():  # the Trainer's own loss (image features through its cache), with the model's logits
        loss, out = trainer.compute_loss(model, dict(batch), return_outputs=True)
    logits, labels = out.logits[:, :-1].float(), batch["labels"][:, 1:]
    per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX,
                                                  reduction="none")
    supervised = labels != IGNORE_INDEX
    tokenizer = trainer.processing_class.tokenizer
    assert int(supervised.sum()) == sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    torch.testing.assert_close(loss, per_token[supervised].mean(), rtol=1e-5, atol=1e-6)
