"""The Seq2Seq-style Trainer for fine-tuning GOT-OCR2 on text lines: building it, its metrics, the image-feature
cache, loading the datasets, and saving what a run leaves behind. The flags are in :mod:`hindi_ocr.arguments`;
what pages (--lines_per_page) change in the Trainer is in :mod:`hindi_ocr.page_training`."""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from datasets import IterableDataset
from transformers import EarlyStoppingCallback, Seq2SeqTrainer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .arguments import WORLD_SIZE_VARIABLES, DataArguments, LoraArguments, ModelArguments, parse_options
from .card import write_model_card
from .checkpoints import FullModelReloading
from .checks import check_got_ocr2
from .guard import NonFiniteGuard, NonFiniteTraining, sixteen_bit_flags
from .inference import save_settings
from .examples import IGNORE_INDEX, OcrExampleBuilder, prompt_length
from .generation import configure_generation, end_ids, finished_rows, generation_kwargs
from .modeling import attach_lora, load_base_model, load_processor
from .page_training import PageEpochs, batch_lines, page_layout, page_lines, settle_generated
from .pages import as_pages
from .scoring import failure_scores, score

logger = logging.getLogger(__name__)


class ImageFeatureCache:
    """Projected image features of a frozen vision tower + projector, by image content key, in host memory.

    A frozen encoder gives the same features for the same pixels at every step, so each distinct line image is
    encoded once (without autograd) and reused in later epochs and evaluations. Entries are added until ``max_bytes``
    is reached; images that do not fit are encoded whenever they come (nothing is evicted).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.nbytes, self.hits, self.misses = max_bytes, 0, 0, 0
        self._features: dict[str, torch.Tensor] = {}

    def __contains__(self, key) -> bool:
        return key in self._features

    def __len__(self) -> int:
        return len(self._features)

    def features(self, keys, pixel_values, encode, device) -> torch.Tensor:
        """(batch, image tokens, hidden) features for ``keys``; ``encode`` runs on the pixel_values rows not cached."""
        missing = [i for i, key in enumerate(keys) if key not in self._features]
        self.hits, self.misses = self.hits + len(keys) - len(missing), self.misses + len(missing)
        fresh = {}
        if missing:
            if pixel_values is None:
                raise RuntimeError("a batch without pixel_values has images whose features are not cached")
            encoded = encode(pixel_values if len(missing) == len(keys) else pixel_values[missing])
            for row, i in zip(encoded, missing):
                fresh[keys[i]] = row
                if keys[i] not in self._features and self.nbytes + row.nbytes <= self.max_bytes:
                    self._features[keys[i]] = row.detach().to("cpu", copy=True)
                    self.nbytes += row.nbytes
        return torch.stack([fresh[key] if key in fresh else self._features[key].to(device) for key in keys])


def image_encoder_frozen(model) -> bool:
    """True when no weight of the vision tower or projector trains and neither has dropout: features are fixed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    parts = [getattr(inner, name, None) for name in ("vision_tower", "multi_modal_projector")]
    if any(part is None for part in parts) or any(p.requires_grad for part in parts for p in part.parameters()):
        return False
    if getattr(getattr(base.config, "vision_config", None), "attention_dropout", 0.0):
        return False
    return not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for part in parts for m in part.modules())


class OcrTrainer(FullModelReloading, Seq2SeqTrainer):
    """Seq2SeqTrainer whose generation reads from the prompt part of each batch (a decoder-only model)."""

    def __init__(self, *args, data_args: DataArguments | None = None, splits=None,
                 image_feature_cache: ImageFeatureCache | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_args, self.splits = data_args, splits  # what the model card says about the data
        self.image_feature_cache = image_feature_cache  # set when the image encoder is frozen
        self.lines_trained = 0  # lines in this process's training batches, this session
        self.page_rereads = 0  # pages read again line by line in the current evaluation
        if hasattr(self.train_dataset, "set_epoch"):
            self.add_callback(PageEpochs(self.train_dataset))

    def lines_seen(self) -> int:
        """Training lines seen in this session, all processes (a collective: every process must call it)."""
        total = torch.tensor(self.lines_trained, device=self.args.device)
        return int(self.accelerator.reduce(total, reduction="sum")) if self.args.world_size > 1 else int(total)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs also give lines seen and lines/s (with pages a sample is a page of several lines)."""
        if "loss" in logs:
            logs["lines_seen"] = self.lines_seen()
            if start_time is not None:
                logs["lines_per_second"] = round(logs["lines_seen"] / max(time.time() - start_time, 1e-9), 3)
        super().log(logs, start_time)

    def _with_image_features(self, model, inputs, always: bool = False):
        """``inputs`` with the images encoded once, without autograd (``mm_encoder_outputs``): through the feature
        cache when the encoder is frozen, or ``always`` (evaluation: one encoding for both the loss and generation)."""
        inputs = dict(inputs)
        keys = inputs.pop("image_keys", None)
        cached = self.image_feature_cache is not None and keys is not None
        if not (cached or always) or "mm_encoder_outputs" in inputs:
            return inputs
        pixel_values = inputs.pop("pixel_values", None)
        encoder = self.accelerator.unwrap_model(model)

        def encode(pixels):
            with torch.no_grad(), self.accelerator.autocast():
                return encoder.get_image_features(pixel_values=pixels.to(encoder.dtype)).pooler_output

        if cached:
            features = self.image_feature_cache.features(keys, pixel_values, encode, encoder.device)
        else:
            features = encode(pixel_values)
        inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=features)}
        return inputs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.lines_trained += batch_lines(inputs)
        inputs = {k: v for k, v in inputs.items() if k not in ("line_counts", "line_images")}
        # a frozen encoder runs without autograd even on batches the cache does not see (pages new each epoch)
        inputs = self._with_image_features(model, inputs, always=self.image_feature_cache is not None)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """The model and hindi_ocr.json (line layout, lines per page), in output_dir and in each checkpoint-N before
        the Trainer uploads it: every copy is read as it was trained."""
        super().save_model(output_dir, _internal_call)
        if self.data_args is not None and self.args.should_save:
            save_settings(output_dir or self.args.output_dir, self.data_args.line_layout, self.data_args.lines_per_page)

    def _save_checkpoint(self, model, trial):
        """No checkpoint once the non-finite guard has stopped the run: with --save_strategy best the Trainer decides
        to save after the evaluation whose non-finite loss stopped it."""
        if not any(isinstance(c, NonFiniteGuard) and c.message for c in self.callback_handler.callbacks):
            super()._save_checkpoint(model, trial)

    def create_model_card(self, **kwargs):
        """Our card (hindi_ocr.card), not the Trainer's draft; Trainer.push_to_hub calls this before uploading."""
        if self.is_world_process_zero():
            write_model_card(self)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """Gather with ``gather_for_metrics``: Seq2SeqTrainer.evaluate/predict switch to ``accelerator.gather``, which
        keeps the lines a distributed sampler repeats to fill the last batch, so a data-parallel eval would count
        some lines twice in CER/WER and the loss. With pages, ``{prefix}_page_rereads`` counts the pages read again
        line by line because their output had another number of lines."""
        self.gather_function = partial(self.accelerator.gather_for_metrics,
                                       use_gather_object=self.args.eval_use_gather_object)
        self.page_rereads = 0
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self.data_collator.pages is not None and output.metrics is not None:
            rereads = torch.tensor(self.page_rereads, device=self.args.device)
            if self.args.world_size > 1:
                rereads = self.accelerator.reduce(rereads, reduction="sum")
            output.metrics[f"{metric_key_prefix}_page_rereads"] = int(rereads)
        return output

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        line_images = inputs.get("line_images")
        inputs = {k: v for k, v in inputs.items() if k not in ("line_counts", "line_images")}
        if not self.args.predict_with_generate or prediction_loss_only:
            inputs = self._with_image_features(model, self._prepare_inputs(inputs))
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        gen_kwargs = gen_kwargs or {k: v for k, v in getattr(self, "_gen_kwargs", {}).items() if v is not None}
        gen_kwargs.pop("max_length", None)  # a decoder-only length would count the prompt; max_new_tokens is set
        with torch.no_grad():
            inputs = self._with_image_features(model, inputs, always=True)
            with self.compute_loss_context_manager():
                loss = model(**inputs).loss.detach()
            start = prompt_length(inputs["labels"])
            generated = model.generate(
                input_ids=inputs["input_ids"][:, :start],
                attention_mask=inputs["attention_mask"][:, :start],
                mm_encoder_outputs=inputs["mm_encoder_outputs"],
                **gen_kwargs, **generation_kwargs(start),  # the repetition stop (hindi_ocr.generation)
            )[:, start:]
        if line_images is not None:
            generated, rereads = settle_generated(model, self.data_collator, self.processing_class.tokenizer,
                                                  generated, line_images, gen_kwargs)
            self.page_rereads += rereads
        return loss, generated, inputs["labels"]


def make_compute_metrics(tokenizer, num_samples: int = 3, pages: bool = False):
    """CER/WER/grapheme CER and failure scores (scoring.failure_scores) from generated ids; prints a few lines so a
    person sees what the model reads. ``pages``: scored line by line (page_training.page_lines), flags per page."""

    def decode(rows: np.ndarray) -> list[str]:
        return tokenizer.batch_decode(np.where(rows == IGNORE_INDEX, tokenizer.pad_token_id, rows), True)

    def compute_metrics(eval_pred):
        predictions, references = decode(eval_pred.predictions), decode(eval_pred.label_ids)
        repetitions = finished_rows(eval_pred.predictions, end_ids(tokenizer))[1]
        if pages:
            repetitions = [flag for flag, ref in zip(repetitions, references) for _ in ref.split("\n")]
            predictions, references = page_lines(predictions, references)
        for pred, ref in list(zip(predictions, references))[:num_samples]:
            logger.info("\n  ref:  %s\n  pred: %s", ref, pred)
        return {**score(predictions, references), **failure_scores(predictions, references, repetitions)}

    return compute_metrics


def build_model_and_processor(model_args: ModelArguments, lora_args: LoraArguments, training_args, max_new_tokens):
    """Base GOT-OCR2 + processor (hindi_ocr.generation's settings), in LoRA unless full fine-tuning was asked for."""
    token = training_args.hub_token
    config = check_got_ocr2(model_args.model_name_or_path, revision=model_args.model_revision, token=token)
    processor = load_processor(model_args.model_name_or_path, config, revision=model_args.model_revision, token=token)
    model = load_base_model(model_args.model_name_or_path, config, processor, dtype=model_args.dtype,
                            revision=model_args.model_revision, token=token)
    configure_generation(model, processor, max_new_tokens=max_new_tokens)
    if lora_args.use_lora:
        if training_args.gradient_checkpointing:
            model.enable_input_require_grads()  # frozen embeddings would otherwise cut the gradient
        model = attach_lora(model, r=lora_args.lora_r, alpha=lora_args.lora_alpha, dropout=lora_args.lora_dropout,
                            adapt_vision=lora_args.lora_vision, train_projector=lora_args.train_projector,
                            target_modules=lora_args.lora_target_modules)
    return model, processor


def build_trainer(model, processor, datasets, data_args: DataArguments, training_args) -> OcrTrainer:
    """The Trainer with our collator, generation-based CER/WER and optional early stopping."""
    dtype = str(getattr(model, "dtype", "")).removeprefix("torch.")
    callbacks = [NonFiniteGuard(training_args.output_dir, training_args.learning_rate,
                                sixteen_bit_flags(training_args, dtype), loss_scaling=training_args.fp16)]
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience))
    cache = None
    if image_encoder_frozen(model):
        cache = ImageFeatureCache(max(0, getattr(training_args, "image_feature_cache_mb", 0)) * 2**20)
        logger.info("image encoder frozen: features computed without autograd, cached up to %d MiB",
                    cache.max_bytes >> 20)
    per_page = data_args.lines_per_page
    collator = OcrExampleBuilder(processor, line_layout=data_args.line_layout,
                                 max_target_tokens=data_args.max_target_tokens, feature_cache=cache,
                                 pages=page_layout(processor, per_page), cache_varied_pages=not data_args.regroup_pages)
    train = datasets.get("train")
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    if any(isinstance(split, IterableDataset) for split in datasets.values()):  # --streaming
        # accelerate would otherwise read every batch of a stream on process 0, then concatenate and broadcast them:
        # that fails on batches of different widths and on their image keys. Each process reads its own part.
        training_args.accelerator_config.dispatch_batches = False
    if isinstance(train, IterableDataset):
        from .data import single_shard

        if training_args.world_size > 1:  # every process the same steps, each line once per pass (data.single_shard)
            train = single_shard(train)
        train = train.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size)
    else:  # pages (N > 1): shuffled into new groups each epoch; one line per image: unchanged
        train = as_pages(train, per_page, train=True, seed=seed, regroup=data_args.regroup_pages)
    return OcrTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=as_pages(datasets.get("validation"), per_page),
        data_collator=collator,
        processing_class=processor,
        compute_metrics=make_compute_metrics(processor.tokenizer, data_args.num_sample_predictions, per_page > 1),
        callbacks=callbacks,
        data_args=data_args,
        splits=datasets,
        image_feature_cache=cache,
    )


def load_datasets(data_args: DataArguments):
    """The line dataset named by the flags, cut to --max_*_samples.

    --streaming under a launcher: validation and test are read into memory (paths, not pixels), because a
    data-parallel evaluation has to know where a split ends to count each line once; the training stream is split
    between the processes by accelerate (see build_trainer).
    """
    from .data import in_memory, load_line_dataset, select_samples
    from .rows import InvalidRowError

    try:
        datasets = load_line_dataset(data_args.dataset_name, data_args.dataset_config_name,
                                     data_dir=data_args.data_dir, streaming=data_args.streaming, check_texts=True,
                                     **parse_options(data_args.dataset_options))
        datasets = select_samples(datasets, data_args)
        if data_args.streaming and max(int(os.environ.get(name) or 1) for name in WORLD_SIZE_VARIABLES) > 1:
            datasets.update({split: in_memory(datasets[split]) for split in ("validation", "test")
                             if split in datasets})
    except InvalidRowError as err:  # before any model loads: fix the data or skip bad rows
        raise SystemExit(f"{err}\nFix it, or pass --dataset_options skip_invalid=true to skip bad rows "
                         "(each skipped row is counted, with its reason, in the log).") from None
    except FileNotFoundError as err:  # no data.csv (or JSON) where the flags point
        flag = f"--data_dir {data_args.data_dir}" if data_args.data_dir else f"--dataset_name {data_args.dataset_name}"
        raise SystemExit(f"{flag}: {err}") from None
    return datasets


def train_and_save(trainer: OcrTrainer, training_args, data_args: DataArguments) -> dict:
    """Train (or resume), then write the adapter/model, processor, reading settings and metrics to output_dir."""
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    guard = next((c for c in trainer.callback_handler.callbacks if isinstance(c, NonFiniteGuard)), None)
    if guard is not None and guard.message:  # the Trainer stopped cleanly (logs flushed, pushes done); save nothing
        raise NonFiniteTraining(guard.message)
    lines = trainer.lines_seen()  # with pages a "sample" is a page: say how many lines that was
    result.metrics["train_lines_seen"] = lines
    if result.metrics.get("train_runtime"):
        result.metrics["train_lines_per_second"] = round(lines / result.metrics["train_runtime"], 3)
    trainer.save_model(_internal_call=True)  # with hindi_ocr.json; no push yet: hub.publish_run pushes once tested
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    return result.metrics


def evaluate_test(trainer: OcrTrainer, datasets) -> dict | None:
    """CER/WER on the test split, written to test_results.json."""
    if "test" not in datasets:
        return None
    per_page = trainer.data_args.lines_per_page if trainer.data_args else 1
    metrics = trainer.evaluate(as_pages(datasets["test"], per_page), metric_key_prefix="test")
    trainer.log_metrics("test", metrics)
    trainer.save_metrics("test", metrics)
    return metrics


def where_saved(trainer: OcrTrainer) -> str:
    """The run's last line: where the model, its metrics and its card are (and the Hub repo when pushed)."""
    out = Path(trainer.args.output_dir)
    kind = "adapter" if (out / "adapter_config.json").is_file() else "model"
    metrics = [name for name in ("test_results.json", "eval_results.json", "all_results.json") if (out / name).is_file()]
    parts = [f"{kind} in {out}/", f"metrics in {', '.join(metrics) or 'the log above'}", f"model card {out}/README.md"]
    if "tensorboard" in (trainer.args.report_to or []):
        parts.append(f"TensorBoard logs in {out}/runs")
    if trainer.args.push_to_hub:
        parts.append(f"pushed to the Hub as {getattr(trainer, 'hub_model_id', None) or trainer.args.hub_model_id}")
    return "Done: " + ", ".join(parts)
