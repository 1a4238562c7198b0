"""Hindi (Devanagari) text-line OCR: the seed CSV layout, ms-swift JSON rows, or lines rendered from fonts.

The reading and checking live in ``hindi_ocr.rows`` (finding the files: ``discovery``, the split: ``splits``, the
stream: ``streaming``) and the rendering in ``hindi_ocr.render``; this script only maps configs to splits. See README.md beside it for the options.

Streaming (``load_dataset(..., streaming=True)`` / ``as_streaming_dataset()``) yields the same rows per split as a
build; each annotation file is one shard, so ``split_dataset_by_node`` and DataLoader workers split by file.
"""

import os
from dataclasses import dataclass
from typing import Optional

import datasets
import numpy as np
from datasets.data_files import DataFilesDict
from datasets.fingerprint import Hasher

from hindi_ocr import discovery, render, rows, splits, streaming, text
from hindi_ocr.splits import SPLITS, read_splits

_DESCRIPTION = "Text-line images of Hindi (Devanagari) with their NFC transcription, for OCR fine-tuning."
_LICENSE = "Builder: Apache-2.0. Fonts: SIL OFL 1.1. Built-in synthetic text: wordfreq data, CC BY-SA 4.0."
_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


@dataclass
class AnnotatedConfig(datasets.BuilderConfig):
    """Options shared by the configs that read your annotation files; the cache key covers those files' size and
    modification time, so editing a CSV/JSON rebuilds the dataset."""

    validation_ratio: float = 0.05
    test_ratio: float = 0.05
    split_seed: int = 42
    skip_invalid: bool = False
    check_images: str = "verify"

    def annotation_files(self) -> list[str]:
        raise NotImplementedError

    def create_config_id(self, config_kwargs, custom_features=None):
        fingerprint = discovery.fingerprint(self.annotation_files())
        return super().create_config_id({**config_kwargs, "inputs": fingerprint}, custom_features)


@dataclass
class CsvConfig(AnnotatedConfig):
    """Seed layout: DIR/data.csv (image_file,text), images in DIR/output_images/ (or beside the CSV), and
    DIR/TestSamples/data.csv as the test split when present; missing splits are carved off by seeded hash."""

    csv_file: str = "data.csv"
    image_dir: Optional[str] = None
    test_dir: str = "TestSamples"

    def inputs(self):
        return discovery.find_csv_inputs(self.data_dir, self.data_files, self.csv_file, self.image_dir,
                                    self.test_dir)

    def annotation_files(self):
        return [path for entries in self.inputs().values() for path, _ in entries]


@dataclass
class SwiftJsonConfig(AnnotatedConfig):
    """ms-swift rows {"query", "response", "images": [path]} from a JSON array or JSONL file."""

    json_file: Optional[str] = None

    def inputs(self):
        return discovery.find_json_inputs(self.data_dir, self.data_files, self.json_file)

    def annotation_files(self):
        return [path for paths in self.inputs().values() for path in paths]


@dataclass
class SyntheticConfig(datasets.BuilderConfig):
    """Lines rendered with the Devanagari fonts on PyPI, from text_file or from wordfreq's Hindi words.

    train_lines=None means 200 generated lines, or every text_file line not used by validation/test.
    """

    text_file: Optional[str] = None
    train_lines: Optional[int] = None
    validation_lines: int = 16
    test_lines: int = 16
    seed: int = 0
    fonts: Optional[str] = None  # comma-separated families or faces, e.g. "Hind,Teko-Bold"; None: all
    image_height: int = 64
    min_words: int = 3
    max_words: int = 8
    augment: bool = True
    vocabulary: int = 0  # > 0: distinct lines of words drawn uniformly from the N commonest (quick start: 200)
    font_size: int = 0  # > 0: every line at this size, black on white, no noise (quick start: 32)

    def text_path(self):
        if self.text_file and self.data_dir and not os.path.isabs(self.text_file):
            return os.path.join(self.data_dir, self.text_file)
        return self.text_file

    def create_config_id(self, config_kwargs, custom_features=None):
        extra = {"inputs": discovery.fingerprint([self.text_path()])} if self.text_file else {}
        return super().create_config_id({**config_kwargs, **extra}, custom_features)


def _absolute(data_files, root):
    """Relative data_files are read from data_dir (or the working directory), not this script's folder."""
    if isinstance(data_files, str):
        return data_files if os.path.isabs(data_files) else os.path.abspath(os.path.join(root, data_files))
    if isinstance(data_files, dict):
        return {split: _absolute(files, root) for split, files in data_files.items()}
    return [_absolute(files, root) for files in data_files]


def _source_hash(script_hash):
    """Fold the library's code into the cache key: the rows/rendering logic lives outside this script."""
    sources = [module.__file__ for module in (discovery, rows, splits, streaming, render, text)] + [__file__]
    return Hasher.hash([script_hash] + [open(path, "rb").read() for path in sources])


class HindiLineOCR(datasets.GeneratorBasedBuilder):
    """Features: image, text (NFC), image_file. Default config: csv given data_dir/data_files, else
    synthetic."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIGS = [
        CsvConfig(name="csv", version=VERSION, description=CsvConfig.__doc__),
        SwiftJsonConfig(name="swift_json", version=VERSION, description=SwiftJsonConfig.__doc__),
        SyntheticConfig(name="synthetic", version=VERSION, description=SyntheticConfig.__doc__),
    ]
    DEFAULT_CONFIG_NAME = "synthetic"

    def __init__(self, *args, config_name=None, data_dir=None, data_files=None, hash=None, **kwargs):
        if config_name is None:
            config_name = "csv" if data_dir or data_files else "synthetic"
        if data_files is not None and not isinstance(data_files, DataFilesDict):
            data_files = _absolute(data_files, data_dir or os.getcwd())
        super().__init__(*args, config_name=config_name, data_dir=data_dir, data_files=data_files,
                         hash=_source_hash(hash), **kwargs)

    def _info(self):
        string = datasets.Value("string")
        features = datasets.Features({"image": datasets.Image(), "text": string, "image_file": string})
        return datasets.DatasetInfo(description=_DESCRIPTION, features=features, license=_LICENSE)

    def _split_generators(self, dl_manager):
        config = self.config
        if isinstance(config, SyntheticConfig):
            return self._synthetic_splits(config)
        fmt = "csv" if isinstance(config, CsvConfig) else "swift_json"
        options = dict(validation_ratio=config.validation_ratio, test_ratio=config.test_ratio,
                       split_seed=config.split_seed, skip_invalid=config.skip_invalid,
                       check_images=config.check_images)
        if isinstance(dl_manager, datasets.StreamingDownloadManager):
            # One read of the annotation files now (text checks, the split); images are checked as rows are yielded.
            plan = streaming.plan_stream(config.inputs(), fmt, **options)
            return [datasets.SplitGenerator(name=split, gen_kwargs={"sources": sources, "stream": stream})
                    for split, (stream, sources) in plan.items()]
        carved = read_splits(config.inputs(), fmt, **options)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"line_rows": carved[split]})
                for split in SPLITS if carved[split]]  # a ratio of 0 means no such split

    def _synthetic_splits(self, config):
        counts = [config.test_lines, config.validation_lines, config.train_lines]
        if config.train_lines is None and not config.text_file:
            counts[2] = 200
        total = None if counts[2] is None else sum(counts)
        lines = render.generate_lines(total, config.seed, config.text_path(), config.min_words,
                                      config.max_words, vocabulary=0 if config.text_file else config.vocabulary)
        test, validation = lines[: counts[0]], lines[counts[0]: counts[0] + counts[1]]
        parts = {"train": lines[counts[0] + counts[1]:], "validation": validation, "test": test}
        if not parts["train"]:
            raise ValueError(f"{config.text_path()} has no lines left for train after validation and test")
        fonts = tuple(render.devanagari_fonts(config.fonts))  # a tuple: only the lines are shards when streaming
        return [datasets.SplitGenerator(name=split, gen_kwargs={"lines": list(enumerate(parts[split])),
                                                                 "split": split, "fonts": fonts})
                for split in SPLITS if parts[split]]

    def _generate_examples(self, line_rows=None, lines=None, split=None, fonts=None, sources=None, stream=None):
        if sources is not None:  # streaming: rows read from each file as they are used
            line_rows = (row for source in sources for row in streaming.stream_rows(source, stream))
        if line_rows is not None:
            for key, row in enumerate(line_rows):
                image = {"path": row.image_path, "bytes": None}
                yield key, {"image": image, "text": row.text, "image_file": row.image_file}
            return
        config = self.config
        for key, line in lines:  # (index, text): the index seeds the rendering, also in a streamed shard
            rng = np.random.default_rng([config.seed, _SPLIT_IDS[split], key])
            image, face = render.render_sample(line, rng, fonts, config.image_height, config.augment,
                                               config.font_size)
            image_file = f"{split}/{key:06d}__{face.name}.png"
            yield key, {"image": {"path": image_file, "bytes": render.png_bytes(image)}, "text": line,
                        "image_file": image_file}
