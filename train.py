#!/usr/bin/env python
"""Fine-tune GOT-OCR2 on Hindi text lines with LoRA; CER/WER at every evaluation; optionally push to the Hub.

    python train.py --data_dir DIR [--push_to_hub --hub_model_id USER/NAME] [any Seq2SeqTrainingArguments flag]
    python train.py configs/smoke.yaml [--flag value ...]     # flags from a YAML/JSON file, later flags win
"""

import logging

import transformers

from hindi_ocr.arguments import parse_args
from hindi_ocr.checks import check_training_run
from hindi_ocr.hub import publish_run
from hindi_ocr.space import publish_demo_space
from hindi_ocr.page_training import max_new_tokens
from hindi_ocr.training import (
    build_model_and_processor, build_trainer, evaluate_test, load_datasets, train_and_save, where_saved,
)


def main(argv=None):
    model_args, data_args, lora_args, training_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    transformers.set_seed(training_args.seed)

    check_training_run(model_args, data_args, lora_args, training_args)  # local flags, data folder, output_dir
    datasets = load_datasets(data_args)
    model, processor = build_model_and_processor(model_args, lora_args, training_args,
                                                 max_new_tokens=max_new_tokens(data_args))
    trainer = build_trainer(model, processor, datasets, data_args, training_args)
    train_and_save(trainer, training_args, data_args)
    test = evaluate_test(trainer, datasets)
    publish_run(trainer)  # our model card into output_dir; the final push with --push_to_hub
    publish_demo_space(trainer)  # --push_demo_space: a Gradio Space reading with the model just pushed
    if trainer.is_world_process_zero():
        score = f", test CER {test['test_cer']:.3f}" if test and "test_cer" in test else ""  # lines it never saw
        print(where_saved(trainer) + score, flush=True)


if __name__ == "__main__":
    main()
