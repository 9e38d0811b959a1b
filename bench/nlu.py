"""NLU benchmark: training time, model size, accuracy and macro-F1 on the held-out and blind
sets, top confusions, safety recall and false-positive rate, /model/parse latency, Rasa
server memory.

Run from the repo root: `.venv/bin/python bench/nlu.py` (or `make bench`).
`--config FILE` benchmarks another pipeline; `--no-train` reuses the newest model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import ROOT, Settings
from bot.stack import latest_model, rasa_server
from tests.conftest import free_port
from tests.test_nlu_holdout import HOLDOUT, SAFETY_INTENTS, examples, plain

# Written without sight of the training data or the held-out set; never used for tuning.
BLIND = ROOT / "bench" / "data" / "nlu_blind.yml"


def train(config: Path, out: Path) -> tuple[Path, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_CACHE_DIRECTORY": str(out / "cache")}
    start = time.perf_counter()
    subprocess.run(
        [
            str(ROOT / ".venv-rasa" / "bin" / "rasa"),
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--fixed-model-name",
            "bench",
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return out / "bench.tar.gz", time.perf_counter() - start


def rss_mb(port: int) -> float:
    """Resident memory of the process listening on `port` (the Rasa server)."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True
    ).stdout
    pid = out.split("pid=")[1].split(",")[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    labels = {gold for gold, _ in pairs}
    scores = []
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def report(name: str, pairs: list[tuple[str, str]]) -> None:
    accuracy = sum(g == p for g, p in pairs) / len(pairs)
    print(f"{name} set:  {len(pairs)} messages")
    print(f"  intent accuracy:   {accuracy:.3f}")
    print(f"  intent macro-F1:   {macro_f1(pairs):.3f}")
    confusions = Counter((g, p) for g, p in pairs if g != p).most_common(8)
    print(
        "  top confusions:    "
        + (", ".join(f"{g}->{p} x{n}" for (g, p), n in confusions) or "none")
    )
    safety = [p for g, p in pairs if g in SAFETY_INTENTS]
    others = [p for g, p in pairs if g not in SAFETY_INTENTS]
    recall = sum(p in SAFETY_INTENTS for p in safety) / len(safety)
    false_positive = sum(p in SAFETY_INTENTS for p in others) / len(others)
    print(f"  safety recall:     {recall:.3f} ({len(safety)} emergency/self-harm messages)")
    print(f"  safety false-pos.: {false_positive:.3f} ({len(others)} other messages)")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(rasa_port=free_port(), actions_port=free_port())
        if args.no_train:
            model, seconds = latest_model(settings), float("nan")
        else:
            print(f"training {args.config.name} from scratch (no cache)...", flush=True)
            model, seconds = train(args.config, Path(tmp))
        print(f"training time:       {seconds:.0f} s")
        print(f"model size:          {model.stat().st_size / 1e6:.1f} MB")

        with rasa_server(settings, model) as url:
            token = settings.rasa_token.get_secret_value()
            client = httpx.Client(timeout=60)

            def parse(text: str) -> dict:
                r = client.post(f"{url}/model/parse", params={"token": token}, json={"text": text})
                r.raise_for_status()
                return r.json()

            held: list[tuple[str, str]] = []
            for name, path in (("held-out", HOLDOUT), ("blind", BLIND)):
                batch = [(intent, plain(text)) for intent, text in examples(path)]
                report(name, [(gold, parse(text)["intent"]["name"]) for gold, text in batch])
                held += batch

            texts = [text for _, text in held]
            latencies = []
            for i in range(args.requests):
                start = time.perf_counter()
                parse(texts[i % len(texts)])
                latencies.append((time.perf_counter() - start) * 1000)
            print(
                f"/model/parse:        p50 {percentile(latencies, 50):.1f} ms, "
                f"p95 {percentile(latencies, 95):.1f} ms over {args.requests} requests"
            )
            print(f"Rasa server memory:  {rss_mb(settings.rasa_port):.0f} MB RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
