"""Reading at scale (issue 25): infer.py on 2 processes writes what 1 process writes, byte for byte; a killed job
resumes to the same output; a Hub dataset is read like the same files; predictions go to the Hub as a dataset.

The model is the tiny GOT-OCR2 with every weight matrix scaled by 4, so that its (meaningless) readings depend on
the image: lines read differently, so a line out of place, missing or counted twice changes the output and the CER.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import infer
from hindi_ocr.distributed_reading import merge, share_bounds
from hindi_ocr.prediction_files import PredictionFile
from hindi_ocr.render import write_line_folder

ROOT = Path(__file__).resolve().parent.parent
LINES = ["नमस्ते दुनिया", "भारत एक देश है", "हिंदी भाषा", "किताब पढ़ो", "पानी गरम है", "घर चलो", "सूरज निकला"]  # odd
WORDS = "नमस्ते दुनिया भारत एक देश है हिंदी भाषा आज मौसम अच्छा पानी पीना किताब पढ़ो घर चलो सूरज निकला".split()
READ = ["--max_new_tokens", "8", "--batch_size", "2", "--flush_seconds", "0"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch
    from transformers import AutoModelForImageTextToText

    from hindi_ocr.tiny import build_tiny_model

    work = tmp_path_factory.mktemp("read_scale")
    model_dir = build_tiny_model(work / "tiny", seed=1)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() >= 2:
                weight.mul_(4.0)
    model.save_pretrained(model_dir)
    lines = write_line_folder(work / "lines", LINES, test_samples=True)
    many = [" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(3)) for i in range(24)]
    return work, Path(model_dir), lines, write_line_folder(work / "many", many)


def environment() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


LAUNCHERS = {
    "python": [sys.executable],
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"],
}


def infer_command(launcher: str, *args) -> list[str]:
    return [*LAUNCHERS[launcher], str(ROOT / "infer.py"), *map(str, args)]


def run(command, cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


# -- shares and gathering --------------------------------------------------------------------------------------

def test_shares_are_disjoint_and_cover_every_line_of_a_round():
    for count in range(0, 25):
        for world in (1, 2, 3, 8):
            for per_share in (1, 2, 3, 8):
                if count > world * per_share:
                    continue  # a round never holds more than world x per_share lines
                covered = []
                for rank in range(world):
                    start, stop = share_bounds(count, per_share, rank, world)
                    assert stop - start <= per_share
                    covered += range(start, stop)
                assert covered == list(range(count)), (count, world, per_share)  # each line once, in order


def test_merge_puts_shares_in_input_order_and_counts_a_padded_line_once():
    record = lambda i: {"image": f"{i}.png", "prediction": str(i)}  # noqa: E731
    # a round of lines 10..14 on 3 processes, the last share padded with a repeat of line 14 (as accelerate pads)
    parts = [[(12, record(12)), (13, record(13))], [(10, record(10)), (11, record(11))], [(14, record(14)), (14, record(14))]]
    assert merge(parts, 10, 5) == [record(i) for i in range(10, 15)]
    with pytest.raises(RuntimeError, match="1 missing"):
        merge([[(10, record(10))], [(12, record(12))]], 10, 3)


# -- 1 process against 2 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("launcher, per_page, suffix", [("torchrun", 1, ".jsonl"), ("accelerate", 2, ".parquet")],
                         ids=["torchrun-lines-jsonl", "accelerate-pages-parquet"])
def test_two_processes_write_what_one_process_writes(setup, launcher, per_page, suffix):
    work, model, lines, _ = setup
    flags = ["--model_name_or_path", model, "--data_dir", lines, "--lines_per_page", per_page, *READ]
    one = run(infer_command("python", *flags, "--output", f"one{suffix}"), work)
    two = run(infer_command(launcher, *flags, "--output", f"two{suffix}"), work)
    assert (work / f"two{suffix}").read_bytes() == (work / f"one{suffix}").read_bytes()
    assert two.stdout == one.stdout
    printed = one.stdout.strip().splitlines()
    images = [line.split("\t")[0] for line in printed[:-1]]
    assert images == [str(lines / "output_images" / f"{i}.png") for i in range(len(LINES))]  # each line once, in order
    predictions = [line.split("\t")[1] for line in printed[:-1]]
    assert len(set(predictions)) >= 3  # readings differ: a swap or a repeat would show
    assert printed[-1].endswith(f"(n={len(LINES)})")
    assert "by 2 processes" in two.stderr and "by 1 process" in one.stderr
    # one progress bar (the main process's), from 0 to all lines, with its rate
    assert two.stderr.count(f" 0/{len(LINES)} [") == 1 and f" {len(LINES)}/{len(LINES)} [" in two.stderr
    assert re.search(r"\d lines/s\]", two.stderr)
    if per_page > 1:
        assert f"{len(LINES)} lines read in 4 pages" in two.stderr
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(work / f"two{suffix}").to_pylist()
        assert [r["image"] for r in rows] == images and [r["reference"] for r in rows] == LINES
        assert [r["prediction"] for r in rows] == predictions
        assert not (work / f"two{suffix}.parts").exists()


# -- killed and resumed ------------------------------------------------------------------------------------------

def complete_lines(path: Path, suffix: str) -> int:
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        parts = path.with_name(path.name + ".parts")
        return sum(pq.read_metadata(p).num_rows for p in parts.glob("part-*.parquet")) if parts.is_dir() else 0
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once, as a stopped machine would (torchrun starts each worker
    in a new session, so killing the launcher's process group would leave them running)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_killed_job_resumes_to_the_same_output(setup, suffix):
    work, model, _, many = setup
    total = 24
    flags = ["--model_name_or_path", model, "--data_dir", many, "--max_new_tokens", "8", "--batch_size", "1",
             "--flush_seconds", "0"]
    reference = work / f"whole{suffix}"
    whole = run(infer_command("python", *flags, "--output", reference), work)
    out = work / f"killed{suffix}"
    job = subprocess.Popen(infer_command("torchrun", *flags, "--output", out), cwd=work, env=environment(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while complete_lines(out, suffix) == 0 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(job.pid)  # the launcher and both readers (each in a session of its own), mid-job
    job.wait()
    written = complete_lines(out, suffix)
    assert 0 < written < total, f"the job was not stopped midway ({written} of {total} lines written)"
    resumed = run(infer_command("python", *flags, "--output", out, "--resume"), work)
    skipped = int(re.search(r"--resume: (\d+) lines already in", resumed.stderr).group(1))
    assert 0 < skipped <= written
    assert out.read_bytes() == reference.read_bytes()
    assert resumed.stdout.strip().splitlines()[-1] == whole.stdout.strip().splitlines()[-1]  # CER over all 24 lines
    assert resumed.stdout.count("\t") == total - skipped  # only the lines read now are printed


def test_a_cut_off_last_line_is_dropped_on_resume(tmp_path):
    records = [{"image": f"{i}.png", "prediction": f"p{i}", "reference": "r"} for i in range(3)]
    for suffix in (".jsonl", ".csv"):
        path = tmp_path / f"p{suffix}"
        out = PredictionFile(str(path))
        out.start()
        out.append(records)
        whole = path.read_bytes()
        with path.open("ab") as f:
            f.write(b'{"image": "3.png", "predic' if suffix == ".jsonl" else b"3.png,p")
        assert PredictionFile(str(path)).resume() == records
        assert path.read_bytes() == whole
    path = tmp_path / "p.parquet"
    out = PredictionFile(str(path))
    out.start()
    out.append(records[:2])
    (out.parts / ".part-000001.parquet.99.tmp").write_bytes(b"PAR1 cut off")  # a part whose write was killed
    assert PredictionFile(str(path)).resume() == records[:2]


def test_resume_goes_back_to_a_batch_boundary(tmp_path):
    """5 lines written by a job reading batches of 2: the 5th is read again, in the batch it belongs to."""
    from types import SimpleNamespace

    from hindi_ocr.distributed_reading import skip_done
    from hindi_ocr.inference import Line

    lines = [Line(f"{i}.png") for i in range(7)]
    path = tmp_path / "p.jsonl"
    out = PredictionFile(str(path))
    out.start()
    out.append([{"image": f"{i}.png", "prediction": str(i)} for i in range(5)])
    out = PredictionFile(str(path))
    done = out.resume()
    rest, kept = skip_done(SimpleNamespace(num_processes=1, is_main_process=True), lines, done, 2, out)
    assert [line.image for line in rest] == ["4.png", "5.png", "6.png"]
    assert kept == done[:4] and path.read_text(encoding="utf-8").count("\n") == 4


def test_every_field_of_a_record_is_written(tmp_path):
    """Reading may add per-line fields (a confidence, a repetition flag...): every format keeps all of them."""
    import pyarrow.parquet as pq

    records = [{"image": "0.png", "prediction": "क", "reference": "क", "confidence": 0.93, "repetition": False},
               {"image": "1.png", "prediction": "खख", "reference": "ख", "confidence": 0.41, "repetition": True}]
    for suffix in (".jsonl", ".csv", ".parquet"):
        path = tmp_path / f"p{suffix}"
        out = PredictionFile(str(path))
        out.start()
        out.append(records[:1])
        out.append(records[1:])
        out.close()
        if suffix == ".parquet":
            assert pq.read_table(path).to_pylist() == records
        elif suffix == ".jsonl":
            assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == records
        else:
            assert path.read_text(encoding="utf-8").splitlines() == [
                "image,prediction,reference,confidence,repetition", "0.png,क,क,0.93,False", "1.png,खख,ख,0.41,True"]
    out = PredictionFile(str(tmp_path / "q.csv"))
    out.start()
    out.append(records[:1])
    with pytest.raises(SystemExit, match="field\\(s\\) flag that the CSV header"):
        out.append([{**records[1], "flag": 1}])


def test_dataset_input_errors_name_the_split_and_the_row(setup, tmp_path, capsys):
    import datasets

    _, model, lines, _ = setup
    folder = tmp_path / "parquet_lines"
    good = (lines / "output_images" / "0.png").read_bytes()
    rows = datasets.Dataset.from_dict(
        {"image": [{"bytes": good, "path": None}, {"bytes": b"not an image", "path": None}], "text": ["क", "ख"]},
        features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")}))
    (folder / "data").mkdir(parents=True)
    rows.to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    with pytest.raises(SystemExit) as err:
        infer.main(["--model_name_or_path", str(tmp_path / "no-model"), "--dataset_name", str(folder),
                    "--split", "validation"])
    assert str(err.value) == f"--split validation: {folder} has the splits test; choose one"
    with pytest.raises(SystemExit) as err:
        infer.main(["--model_name_or_path", str(model), "--dataset_name", str(folder), *READ])
    assert str(err.value).startswith("--split test row 1 (test/1): not a readable image")


def test_resume_refuses_another_jobs_output(setup, tmp_path, capsys):
    _, model, lines, _ = setup
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"image": f"x{i}.png", "prediction": "p"}) + "\n" for i in range(2)),
                     encoding="utf-8")
    before = other.read_bytes()
    with pytest.raises(SystemExit) as err:
        infer.main(["--model_name_or_path", str(model), "--data_dir", str(lines), *READ, "--output", str(other),
                    "--resume"])
    assert "record 1 of" in str(err.value) and "x0.png" in str(err.value) and "another job's output" in str(err.value)
    assert other.read_bytes() == before  # nothing lost


# -- a Hub dataset in, a Hub dataset out ---------------------------------------------------------------------------

def test_hub_dataset_is_read_like_its_files_and_predictions_go_to_the_hub(setup, local_hub, tmp_path, capsys):
    import datasets
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard

    from dataset_builder import publish

    work, model, lines, _ = setup
    publish.main(["--data_dir", str(lines), "--repo_id", "test-user/lines"])
    capsys.readouterr()
    infer.main(["--model_name_or_path", str(model), "--data_dir", str(lines / "TestSamples"), *READ])
    from_files = capsys.readouterr().out.strip().splitlines()
    outputs = {}
    for streaming in ([], ["--streaming"]):
        output = tmp_path / f"hub{len(streaming)}.parquet"
        infer.main(["--model_name_or_path", str(model), "--dataset_name", "test-user/lines", "--split", "test",
                    *streaming, *READ, "--output", str(output), "--push_predictions", "test-user/lines-read"])
        printed = capsys.readouterr().out.strip().splitlines()
        assert printed[-1] == "predictions pushed to test-user/lines-read"
        assert [p.split("\t")[1] for p in printed[:-2]] == [p.split("\t")[1] for p in from_files[:-1]]
        assert printed[-2] == from_files[-1]  # the same CER line: the same 7 lines, each once
        outputs[len(streaming)] = pq.read_table(output).to_pylist()
    assert outputs[0] == outputs[1]
    assert [r["image"] for r in outputs[0]] == [f"{i}.png" for i in range(len(LINES))]
    assert [r["reference"] for r in outputs[0]] == LINES

    pushed = datasets.load_dataset("test-user/lines-read", split="predictions", cache_dir=str(tmp_path / "cache"))
    assert pushed.to_list() == outputs[1]
    card = DatasetCard(local_hub.repo_files("test-user/lines-read", repo_type="dataset")["README.md"].decode())
    cer = re.search(r"CER (\S+)", from_files[-1]).group(1)
    assert f"`{model}`" in card.text and f"| {cer} |" in card.text and "the `test` split of `test-user/lines`" in card.text
    assert card.data.task_categories == ["image-to-text"]
