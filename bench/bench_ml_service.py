"""ML service benchmark: embedding throughput through `photoindex serve-ml` vs in-process, same model.

Reports, in one run (medians of --repeats runs):
* in-process `ImageTextEmbedder.embed_images` over N model inputs in batches of --batch (what an ingest
  worker with a local model does);
* the same N inputs through the service in the compact pixels form (`RemoteEmbedder.embed_images`: a raw
  .npy body per batch, base64 float32 vectors back), from 1, 2 and 4 concurrent clients (threads, each
  with its own share of the inputs), with the service's cross-request batching merging their requests;
* the ratio remote / in-process, and how many model calls the service made per request.

The model is the generated tiny CLIP at a real input size (224 px, 512-d), so the numbers measure what the
service adds (encoding, loopback HTTP, batching, decoding the vectors), not a real model's compute: with a
real model on a GPU, the model dominates and the ratio goes towards 1 (or above, since several workers
share one device's batches).

Usage: python bench/bench_ml_service.py [--images 2048] [--batch 32] [--clients 1,2,4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.remote import RemoteEmbedder
from photoindex.ml.testing import build_tiny_clip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(home: Path, models: Path, port: int, args: list[str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PHOTOINDEX_HOME": str(home),
        "PHOTOINDEX_MODELS_PATH": str(models),
        "PHOTOINDEX_MODEL": "tiny-clip",
        "PHOTOINDEX_AUTO_PULL": "false",
        "PHOTOINDEX_CONFIG": str(home / "none.toml"),
    }
    env.pop("PHOTOINDEX_ML_URL", None)
    cmd = [
        sys.executable,
        "-m",
        "photoindex.cli.main",
        "serve-ml",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *args,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve-ml exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve-ml did not start")


def in_process(model: ImageTextEmbedder, inputs: np.ndarray, batch: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(inputs), batch):
        model.embed_images(inputs[start : start + batch])
    return len(inputs) / (time.perf_counter() - t0)


def remote(clients: list[RemoteEmbedder], inputs: np.ndarray, batch: int) -> float:
    shares = np.array_split(np.arange(len(inputs)), len(clients))
    errors: list[BaseException] = []

    def work(client: RemoteEmbedder, idx: np.ndarray) -> None:
        try:
            part = inputs[idx]
            for start in range(0, len(part), batch):
                client.embed_images(part[start : start + batch])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, s)) for c, s in zip(clients, shares, strict=True)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return len(inputs) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=32, help="images per embed_images call (the pipeline's)")
    parser.add_argument("--clients", default="1,2,4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--service-args", default="", help="extra serve-ml options, e.g. '--batch-wait-ms 2'")
    args = parser.parse_args()
    client_counts = [int(c) for c in args.clients.split(",") if c]

    with tempfile.TemporaryDirectory(prefix="bench-ml-") as tmp:
        work = Path(tmp)
        models = work / "models"
        build_tiny_clip(models / "tiny-clip", image_size=args.image_size, dim=args.dim)
        model = ImageTextEmbedder.load(models / "tiny-clip", name="tiny-clip", batch_size=args.batch)
        size = model.preprocess.size
        inputs = np.random.default_rng(0).integers(0, 256, (args.images, size, size, 3), dtype=np.uint8)
        model.warmup()

        port = free_port()
        proc = start_service(work / "home", models, port, args.service_args.split())
        try:
            url = f"http://127.0.0.1:{port}"
            caps = httpx.get(f"{url}/api/v1/capabilities").json()
            # batch sizes as a worker has them: the service's max_batch (PHOTOINDEX_ML_BATCH_SIZE unset)
            clients = {n: [RemoteEmbedder(url) for _ in range(n)] for n in client_counts}
            for group in clients.values():
                for c in group:
                    c.warmup()
            local: list[float] = []
            results: dict[int, list[float]] = {n: [] for n in client_counts}
            counts: dict[int, list[int]] = {n: [0, 0] for n in client_counts}
            # interleaved, so that a machine busy with something else slows every variant alike
            for _ in range(args.repeats):
                local.append(in_process(model, inputs, args.batch))
                for n in client_counts:
                    before = caps_stats(url)
                    results[n].append(remote(clients[n], inputs, args.batch))
                    after = caps_stats(url)
                    counts[n][0] += after[0] - before[0]
                    counts[n][1] += after[1] - before[1]
            calls = {n: counts[n][1] / max(1, counts[n][0]) for n in client_counts}
            check = clients[client_counts[0]][0]
            same = np.allclose(check.embed_images(inputs[:64]), model.embed_images(inputs[:64]), atol=1e-5)
            for group in clients.values():
                for c in group:
                    c.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)

    base = statistics.median(local)
    print(
        f"tiny CLIP {size} px, {args.dim}-d; {args.images} images in batches of {args.batch}; "
        f"service max_batch {caps['max_batch']} on {caps['device']}; {os.cpu_count()} CPUs; "
        f"median of {args.repeats}"
    )
    print(f"{'in-process embed_images':<34}{base:>10.0f} images/s")
    for n in client_counts:
        med = statistics.median(results[n])
        print(
            f"{f'serve-ml, {n} client(s) (pixels)':<34}{med:>10.0f} images/s   ratio {med / base:5.2f}   "
            f"{calls[n]:.2f} model calls per request"
        )
    print(
        "runs (images/s): in-process "
        + " ".join(f"{v:.0f}" for v in local)
        + "; "
        + "; ".join(f"{n} client(s) " + " ".join(f"{v:.0f}" for v in results[n]) for n in client_counts)
    )
    print(f"vectors equal to in-process: {same}")


def caps_stats(url: str) -> tuple[int, int]:
    """(submissions, batches) of the default model's image batcher."""
    caps = httpx.get(f"{url}/api/v1/capabilities").json()
    stats = caps["models"][0]["stats"]["image"]
    return stats["submissions"], stats["batches"]


if __name__ == "__main__":
    main()
