"""notebooks/kaggle_hindi_got_ocr2.ipynb runs end to end on CPU with nbclient (a real Jupyter kernel): its parameters
cell is followed by one with this test's values (as papermill does), the tiny model, rendered seed-layout folders
for the Kaggle input (data_80k/ and TestSamples/, read-only), the local Hub server for the push, and NUM_GPUS = 2,
which runs the notebook's torchrun command as two CPU processes. The executed
notebook's outputs are checked: the lines it shows, the CER it watches, infer.py's CER line, the files it wrote and
what reached the Hub. The notebook in git carries no outputs."""

import csv
import re
import shutil
import stat
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "kaggle_hindi_got_ocr2.ipynb"
REPO_ID = "test-user/notebook-run"
LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है", "घर बड़ा है", "सूरज निकला",
         "हिन्दी भाषा", "ज्ञान का दीपक"]
TEST_LINES = ["नया दिन", "सुबह की धूप", "मीठा आम"]
CER_LINE = re.compile(r"^CER (\d+\.\d+) WER (\d+\.\d+) grapheme_CER (\d+\.\d+) median_CER \d+\.\d+ "
                      r"catastrophic \d+\.\d+ length_ratio \d+\.\d+ \(n=(\d+)\)$", re.M)


def text_of(cell) -> str:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return text.replace("\r\n", "\n")  # `!command` output comes through a terminal


def cell_with(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def test_notebook_in_git_has_no_outputs_and_parameters_on_top():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert code[0].metadata.get("tags") == ["parameters"] and "DATA_DIR = " in code[0].source


def test_notebook_runs_end_to_end_on_cpu(local_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    kaggle_input = tmp_path / "input"
    data = write_line_folder(kaggle_input / "data_80k", LINES, size=20)
    test_dir = write_line_folder(kaggle_input / "TestSamples", TEST_LINES, size=20)
    for path in [kaggle_input, *kaggle_input.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    model = build_tiny_model(tmp_path / "tiny")
    working = tmp_path / "working"
    working.mkdir()
    tesseract = shutil.which("tesseract") is not None

    nb = nbformat.read(NOTEBOOK, as_version=4)
    values = dict(DATA_DIR=str(data), TEST_DIR=str(test_dir), WORK_DIR=str(working), PROJECT_DIR=str(REPO),
                  MODEL=str(model), HUB_MODEL_ID=REPO_ID, RESUME=False, NUM_GPUS=2, PRECISION="", BATCH_PER_GPU=2,
                  MAX_STEPS=4, EVAL_STEPS=2, MAX_EVAL_SAMPLES=2, MAX_TEST_LINES=2, INSTALL=False,
                  COMPARE_TESSERACT=tesseract,
                  EXTRA_FLAGS="--max_target_tokens 16 --learning_rate 1e-3 --report_to none "
                              "--dataset_options validation_ratio=0.25,test_ratio=0.25")
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items())))
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(working)}}).execute()
    finally:
        for path in [kaggle_input, *kaggle_input.rglob("*")]:
            path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)

    shown = cell_with(nb, 'datasets.load_dataset("./dataset_builder"')
    pairs = re.findall(r"^(\d+)\.png -> (.+)$", text_of(shown), re.M)
    assert len(pairs) == 3 and all(LINES[int(number)] == text for number, text in pairs)
    assert sum("image/png" in o.get("data", {}) for o in shown.outputs) == 3  # the line images themselves

    launched = text_of(cell_with(nb, "launcher = "))
    assert launched.startswith("torchrun --nproc_per_node 2 train.py --model_name_or_path ")
    assert "--per_device_train_batch_size 2 --gradient_accumulation_steps 1 " in launched.splitlines()[0]

    watched = text_of(cell_with(nb, "validation CER"))
    assert re.findall(r"^step (\d+): validation CER \d\.\d{4} WER \d\.\d{4}$", watched, re.M) == ["2", "4"]
    assert re.search(r"^test split: CER \d\.\d{4} WER \d\.\d{4}$", watched, re.M)
    assert (working / "cer.png").stat().st_size > 0

    read = text_of(cell_with(nb, "infer.py --adapter"))
    found = CER_LINE.findall(read)
    assert len(found) == 1 and found[0][3] == "2"  # MAX_TEST_LINES
    assert f"report written to {working / 'report.md'}" in read
    with open(working / "predictions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["reference"] for row in rows] == TEST_LINES[:2]
    assert all(row["prediction"] is not None for row in rows) and ("tesseract" in rows[0]) == tesseract
    assert (working / "report.md").is_file() and (working / "report.png").is_file()
    out = working / "got-ocr2-hindi"
    assert (out / "adapter_model.safetensors").is_file() and (out / "checkpoint-4").is_dir()

    files = local_hub.repo_files(REPO_ID)
    assert files["adapter_model.safetensors"] == (out / "adapter_model.safetensors").read_bytes()
    assert "last-checkpoint/trainer_state.json" in files
    assert f"{REPO_ID} holds {len(files)} files: " in text_of(cell_with(nb, "list_repo_files"))
    assert not list(data.parent.glob("*/.*")) and sorted(p.name for p in data.parent.iterdir()) == [
        "TestSamples", "data_80k"]
