"""Every command README.md shows in a bash block runs here as a user types it.

Commands starting ``python train.py``, ``python infer.py``, ``python -m ...``, ``python bench/...``, ``torchrun`` or
``accelerate launch`` are taken from the README in order and run in one working folder (so ``outputs/run1`` written
by one command is there for the next), against a local Hub server. The only changes made to a command are the rules
in SUBSTITUTIONS below; a command that still holds a placeholder no rule covers fails, so a new README command
cannot go untested. A command that serves until stopped (SERVES: the demo page) is started, asked to read one
line through its API, and stopped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from conftest import HUB_ENV_UNSET, hub_environment
from hub_server import LocalHub
from hindi_ocr.render import write_line_folder

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUNNABLE = re.compile(r"^(python (train\.py|infer\.py|-m \S+|bench/\S+)|torchrun|accelerate launch)(\s|$)")
HAS_GPU = torch.cuda.is_available()

# One table of every change a command gets (pattern -> replacement, why). {data}, {tiny}, {user} are filled in.
SUBSTITUTIONS = [
    (r"(?<=\s)(stepfun-ai/GOT-OCR-2\.0-hf)(?=\s|$)", "{tiny}", "the model becomes the tiny model (no Hub here)"),
    (r"(?<=\s)(DIR|data/?|/path/to/lines|/mnt/lines)(?=[\s/]|$)", "{data}",
     "the data folder becomes a rendered seed-layout folder (data.csv, output_images/, TestSamples/, shards/)"),
    (r"(?<=\s)TestSamples(?=\s|$)", "{data}/TestSamples", "a bare TestSamples is the data folder's test lines"),
    (r"(?<=\s)line1\.png line2\.png(?=\s|$)", "{data}/output_images/0.png {data}/output_images/1.png",
     "line images become two rendered lines"),
    (r"(?<=\s)(USER|YOUR_NAME)/", "{user}/", "a Hub repo becomes a repo of the local Hub server's user"),
    (r"(?<=--data_dir )review/(?=\s|$)", "{data}", "training on a --review folder: here it holds the short-trained "
     "model's readings, which no person has corrected (empty lines); tests/test_failures.py corrects one and loads it"),
    (r"--max_steps \d+", "--max_steps 2", "step counts are made small"),
    (r"--max_samples \d+", "--max_samples 2", "sample counts are made small"),
    (r"--max_eval_samples \d+", "--max_eval_samples 4", "sample counts are made small"),
    (r"--(nproc_per_node|num_processes) 8", r"--\1 2", "8 GPUs become 2 CPU processes"),
    (r"--node_rank NODE_RANK --master_addr HOST", "--node_rank 0 --master_addr 127.0.0.1",
     "two nodes: both ranks run on this machine, one process each, on a free port (see _two_nodes)"),
]
# Added to train.py when the command does not say: small sizes, and the tiny model for the default one.
SMALL_RUN = {"--max_steps": "2", "--max_train_samples": "8", "--max_eval_samples": "4", "--max_test_samples": "4"}
SMALL_BENCH = {"bench/vs_tesseract.py": {"--n": "8"}}  # benchmarks: fewer lines
NOT_HERE = [  # (pattern, why it is not run here, runs anyway when)
    (r"^python -m pytest", "the test command itself: .ci/run runs it", lambda: False),
    (r"--deepspeed |--config_file configs/fsdp\.yaml", "DeepSpeed/FSDP configs target GPUs (tests/test_deepspeed.py "
     "checks them)", lambda: HAS_GPU),
    (r"--compare_tesseract|bench/vs_tesseract\.py", "needs Tesseract with its Hindi model (apt tesseract-ocr-hin)",
     lambda: _has_tesseract()),
]
SERVES = re.compile(r"^python -m hindi_ocr\.demo\b(?!.*--push_to_space)")  # the demo page: runs until stopped
PLACEHOLDER = re.compile(r"(?<![\w/.-])([A-Z][A-Z_]{2,})(?![\w/.-])|\.\.\.|\[|\]|<[a-z_]+>")


def _has_tesseract() -> bool:
    try:
        out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "hin" in out.stdout.split()


@dataclass
class Command:
    line: int
    section: str
    text: str  # as the README shows it (continuations joined)
    env: dict = field(default_factory=dict)  # VAR=value prefixes

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.text[:70]}"


def readme_commands(markdown: str) -> list[Command]:
    """The runnable commands of every ```bash block, in order; `a && b` gives two, `\\` continues a line."""
    commands, section, in_bash, pending, start = [], "", False, "", 0
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.startswith("```"):
            in_bash = line.strip() == "```bash" and not in_bash
            continue
        if not in_bash:
            section = line.lstrip("# ").strip() if line.startswith("#") else section
            continue
        start = start or number
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        words = " ".join(shlex.split(pending, comments=True))
        for part in re.split(r"\s&&\s", words):
            env = {}
            while re.match(r"^[A-Z_]+=\S*\s", part):
                name, _, part = part.partition(" ")
                env.update([name.split("=", 1)])
            if RUNNABLE.match(part):
                commands.append(Command(start, section, part.strip(), env))
        pending, start = "", 0
    return commands


pytestmark = pytest.mark.usefixtures("hub_reachable")  # conftest: the local Hub also with HF_HUB_OFFLINE=1
COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_readme_has_the_commands_we_expect():
    """The extraction itself: the quick start's two commands and the seed-recipe command are found."""
    texts = [c.text for c in COMMANDS]
    assert "python -m hindi_ocr.reader outputs/hindi-reader" in texts
    assert "python train.py configs/smoke.yaml" in texts
    assert texts.index("python -m hindi_ocr.reader outputs/hindi-reader") < texts.index("python train.py configs/smoke.yaml")
    assert any(t.startswith("python train.py --data_dir /path/to/lines --bf16 true --push_to_hub") for t in texts)
    assert "python -m pytest" in texts


def test_extraction_of_a_block():
    md = ("# A\n```bash\nOMP_NUM_THREADS=1 torchrun --nproc_per_node 2 train.py x.yaml   # note\n"
          "pip install -e . && python infer.py --adapter a \\\n    --data_dir b\nhf auth login\n```\n"
          "```python\npython train.py not-bash\n```\n")
    got = [(c.line, c.section, c.text, c.env) for c in readme_commands(md)]
    assert got == [(3, "A", "torchrun --nproc_per_node 2 train.py x.yaml", {"OMP_NUM_THREADS": "1"}),
                   (4, "A", "python infer.py --adapter a --data_dir b", {})]


def substitute(command: Command, ws: "Workspace") -> list[str]:
    """The command as it runs here: SUBSTITUTIONS, then the small-run and tiny-model additions to train.py."""
    text = " " + command.text
    for pattern, replacement, _ in SUBSTITUTIONS:
        text = re.sub(pattern, replacement.format(data=ws.data, tiny=ws.tiny, user=ws.hub.user), text)
    if not HAS_GPU:
        text = text.replace(" --bf16 true", "")
    left = PLACEHOLDER.findall(text.replace(str(ws.root), ""))
    if left:
        pytest.fail(f"README line {command.line}: `{command.text}` has a placeholder no rule in SUBSTITUTIONS covers "
                    f"({left}); add a rule to tests/test_readme_commands.py")
    argv = shlex.split(text)
    if "train.py" in argv:
        yaml_file = next((a for a in argv if a.endswith((".yaml", ".yml", ".json"))), None)
        if "--model_name_or_path" not in argv and yaml_file is None and "--dataset_name" not in argv:
            argv += ["--model_name_or_path", str(ws.tiny)]
        if "--dataset_name" in argv and "--model_name_or_path" not in argv:
            argv += ["--model_name_or_path", str(ws.tiny)]
        for flag, value in SMALL_RUN.items():
            if flag not in argv:
                argv += [flag, value]
    for flag, value in SMALL_BENCH.get(argv[1] if len(argv) > 1 else "", {}).items():
        if flag not in argv:
            argv += [flag, value]
    return argv


class Workspace:
    """The user's checkout as the README's commands see it: a working folder with the project's files, a rendered
    data folder, a tiny model and a local Hub server whose user owns every USER/... repo."""

    def __init__(self, root: Path):
        self.root = root
        self.cwd = root / "checkout"
        self.cwd.mkdir()
        for name in ("train.py", "infer.py", "configs", "bench", "dataset_builder", "metrics", "hindi_ocr"):
            (self.cwd / name).symlink_to(ROOT / name)
        lines = [" ".join(w) for w in zip(*[iter(WORDS)] * 3)]
        self.data = write_line_folder(root / "lines", lines, size=24, test_samples=True)
        shards = self.data / "shards"
        shards.mkdir()
        (shards / "output_images").symlink_to(self.data / "output_images")
        rows = (self.data / "data.csv").read_text(encoding="utf-8").splitlines()
        half = (len(rows) + 1) // 2
        for i, part in enumerate((rows[1:half], rows[half:])):
            (shards / f"part-{i}.csv").write_text("\n".join([rows[0], *part]) + "\n", encoding="utf-8")
        from hindi_ocr.tiny import build_tiny_model

        self.tiny = build_tiny_model(root / "tiny")
        self.hub = LocalHub(root / "hub").start()
        self.env = {k: v for k, v in os.environ.items() if k not in HUB_ENV_UNSET}
        self.env.update(hub_environment(self.hub, root / "hf_home"))
        self.env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_MODULES_CACHE=str(root / "hf_home" / "modules"),
                        HINDI_OCR_BENCH_DIR=str(root / "bench"), HINDI_OCR_CACHE=str(root / "cache"))

    def run(self, argv: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
        argv = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
        if argv[0] == "accelerate":
            argv = [sys.executable, "-m", "accelerate.commands.launch", *argv[2:]]
        elif argv[0] == "torchrun":
            argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
        return subprocess.run(argv, cwd=self.cwd, env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout)


WORDS = ("नमस्ते दुनिया भारत एक देश है हिंदी भाषा आज मौसम अच्छा है पानी पीना किताब पढ़ो घर चलो सूरज निकला "
         "बच्चे खेलते हैं माँ ने खाना बनाया हम स्कूल जाते हैं नदी में पानी बहता है पेड़ पर चिड़िया बैठी है "
         "रात को चाँद निकलता है दिल्ली भारत की राजधानी है").split()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("readme"))
    yield workspace
    workspace.hub.stop()


def _output_dir(argv: list[str], cwd: Path) -> Path:
    if "--output_dir" in argv:
        return cwd / argv[argv.index("--output_dir") + 1]
    config = next((a for a in argv if a.endswith((".yaml", ".yml"))), None)
    if config:
        return cwd / yaml.safe_load((cwd / config).read_text(encoding="utf-8")).get("output_dir", "")
    return cwd / "outputs/got-ocr2-hindi"


def _prepare(argv: list[str], ws: Workspace) -> None:
    """What a user has done before a command: a fresh output_dir unless the command resumes or overwrites (each
    README example is a run of its own), and the tag that --adapter_revision names."""
    if "train.py" in argv and not {"--overwrite_output_dir", "--resume_from_checkpoint"} & set(argv):
        shutil.rmtree(_output_dir(argv, ws.cwd), ignore_errors=True)
    if "--adapter_revision" in argv:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=ws.hub.endpoint, token=ws.hub.token)
        repo, tag = argv[argv.index("--adapter") + 1], argv[argv.index("--adapter_revision") + 1]
        if tag not in [t.name for t in api.list_repo_refs(repo).tags]:
            api.create_tag(repo, tag=tag)


def _check(argv: list[str], result: subprocess.CompletedProcess, ws: Workspace) -> None:
    """What the command must have done, beyond exiting 0."""
    out = result.stdout.strip().splitlines()
    if "train.py" in argv:
        folder = _output_dir(argv, ws.cwd)
        assert out and out[-1].startswith("Done: "), out[-3:]
        assert (folder / "README.md").is_file() and (folder / "all_results.json").is_file()
        if "--report_to" not in argv:  # the default: TensorBoard event files
            assert list((folder / "runs").rglob("events.out.tfevents.*")), f"no TensorBoard logs in {folder}/runs"
        if "--push_to_hub" in argv:
            repo = argv[argv.index("--hub_model_id") + 1]
            assert "README.md" in ws.hub.repo_files(repo)
    elif "infer.py" in argv:
        images = [a for a in argv[2:] if a.endswith(".png")]
        if "--data_dir" in argv:
            assert out[-1].startswith("CER "), out[-3:]
            if "--max_samples" in argv:
                assert out[-1].endswith(f"(n={argv[argv.index('--max_samples') + 1]})"), out[-1]
        elif images:
            # unstripped: a line read as nothing (the tiny model's reading) ends in its tab
            assert [line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line] == images
        if "--merge_lora" in argv:
            assert (ws.cwd / argv[argv.index("--merge_lora") + 1] / "model.safetensors").is_file()
        if "--output" in argv:
            assert (ws.cwd / argv[argv.index("--output") + 1]).is_file()
        if "--push_predictions" in argv:
            repo = argv[argv.index("--push_predictions") + 1]
            assert {"README.md", "data/predictions-00000-of-00001.parquet"} <= set(
                ws.hub.repo_files(repo, repo_type="dataset"))
    elif argv[:3] in (["python", "-m", "hindi_ocr.tiny"], ["python", "-m", "hindi_ocr.reader"]):
        assert (ws.cwd / argv[3] / "config.json").is_file()
    elif "--push_to_space" in argv:
        space = argv[argv.index("--push_to_space") + 1]
        assert {"app.py", "requirements.txt", "README.md"} <= set(ws.hub.repo_files(space, repo_type="space"))
    elif SERVES.match(shlex.join(argv)):  # the page's reading of the line is infer.py's, with no message
        model = [a for flag in ("--adapter", "--model_name_or_path") if flag in argv
                 for a in (flag, argv[argv.index(flag) + 1])]
        if not model:  # no model named: the demo serves the shipped reader, written once into HINDI_OCR_CACHE
            cached = list((ws.root / "cache").glob("reader-*"))
            assert len(cached) == 1, cached
            model = ["--model_name_or_path", str(cached[0])]
        image, jsonl = ws.data / "output_images" / "0.png", ws.root / "demo-check.jsonl"
        done = ws.run(["python", str(ROOT / "infer.py"), *model, str(image), "--output", str(jsonl)], {})
        assert done.returncode == 0, done.stderr[-3000:]
        assert (result.stdout, result.stderr) == (json.loads(jsonl.read_text(encoding="utf-8"))["prediction"], "")


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command(command: Command, ws: Workspace):
    for pattern, why, unless in NOT_HERE:
        if re.search(pattern, command.text) and not unless():
            pytest.skip(f"README line {command.line}: {why}")
    argv = substitute(command, ws)
    _prepare(argv, ws)
    if "--nnodes" in argv:  # two nodes: both ranks on this machine, talking over 127.0.0.1
        result = _two_nodes(argv, command.env, ws)
    elif SERVES.match(command.text):
        result = _serve_and_read(argv, command.env, ws)
    else:
        result = ws.run(argv, command.env)
    assert result.returncode == 0, (f"README line {command.line} ({command.section}): {command.text}\nran: "
                                    f"{shlex.join(argv)}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n"
                                    f"{result.stderr[-6000:]}")
    _check(argv, result, ws)


def _serve_and_read(argv: list[str], env: dict, ws: Workspace) -> subprocess.CompletedProcess:
    """Start the page on a free port, read one rendered line through its API, stop it: (prediction, messages)."""
    from gradio_client import Client, handle_file

    from demo_helpers import start_demo, stop

    process, url = start_demo(argv[1:], ws.root / "demo.log", cwd=ws.cwd, env={**ws.env, **env})
    try:
        answer = Client(url, verbose=False).predict([handle_file(str(ws.data / "output_images" / "0.png"))], "",
                                                    api_name="/read")
    finally:
        stop(process)
    return subprocess.CompletedProcess(argv, 0, answer[0], answer[4])  # it served and answered


def _two_nodes(argv: list[str], env: dict, ws: Workspace) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    argv = [a for a in argv]
    argv[argv.index("--master_addr") + 1] = "127.0.0.1"
    argv[argv.index("--master_port") + 1] = port
    argv[argv.index("--nproc_per_node") + 1] = "1"
    ranks = []
    for rank in ("0", "1"):
        node = list(argv)
        node[node.index("--node_rank") + 1] = rank
        node = [sys.executable, "-m", "torch.distributed.run", *node[1:]]
        ranks.append(subprocess.Popen(node, cwd=ws.cwd, env={**ws.env, **env}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=900) for p in ranks]
    code = max(p.returncode for p in ranks)
    return subprocess.CompletedProcess(argv, code, outputs[0][0], outputs[0][1] + outputs[1][1])


def test_config_comments_point_to_readme_headings():
    """configs/*.yaml comments that send the reader to a README heading name one that exists."""
    headings = {line.lstrip("#").strip() for line in README.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")}
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        comments = " ".join(line.lstrip("# ").strip() for line in config.read_text(encoding="utf-8").splitlines()
                            if line.startswith("#"))
        for name in re.findall(r'README(?: heading)? "([^"]+)"', comments):
            assert name in headings, f"{config.name} points to README heading {name!r}, which does not exist"


def test_the_gpu_install_command_keeps_an_installed_torch():
    """Kaggle and Colab ship a torch matched to their CUDA driver: the README's GPU command must not replace it. Its
    `pip install torch` names no version and no upgrade, and the constraints it installs with pin neither torch nor
    what only torch needs (found from the installed packages' requirements, as .ci/drift.py finds it in pip's
    report), and the project asks only for a minimum torch."""
    import importlib.util
    from importlib import metadata

    spec = importlib.util.spec_from_file_location("drift", ROOT / ".ci" / "drift.py")
    drift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drift)
    installed = {"install": [{"metadata": {"name": d.metadata["Name"], "version": d.version,
                                           "requires_dist": d.requires or []}} for d in metadata.distributions()]}
    torch_own = drift.torch_own(installed)
    assert {"torch", "sympy"} <= torch_own and not {"transformers", "filelock", "numpy"} & torch_own, torch_own
    pinned = {drift.canonical(line.split("==")[0]) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    gpu = [line for line in README.read_text(encoding="utf-8").splitlines()
           if line.startswith("pip install torch && ")]
    assert len(gpu) == 1, gpu
    for step in gpu[0].split(" && "):
        args = shlex.split(step)
        if args[:2] != ["pip", "install"]:
            continue
        assert not {"-U", "--upgrade", "--force-reinstall", "--ignore-installed", "-I"} & set(args), step
        assert not [a for a in args[2:] if re.match(r"torch\W", a)], step  # `torch`, never `torch==...`
        if "-c" in args:
            constraints = ROOT / args[args.index("-c") + 1]
            assert constraints == ROOT / "constraints.txt"
            held = sorted(name for name in pinned if name in torch_own or name.startswith("nvidia-")
                          or name == "triton")
            assert not held, f"constraints.txt pins {held}: installing with it would replace an installed torch"
    requirement = next(line.strip() for line in (ROOT / "setup.cfg").read_text().splitlines()
                       if line.strip().startswith("torch"))
    assert re.fullmatch(r"torch>=[\d.]+", requirement), requirement
