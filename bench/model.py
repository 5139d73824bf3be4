"""Model-level inference benchmark: tokens/s of the encoder (base preset, bf16 on a GPU) on batches
of real BPE windows, beside the same model on the PyTorch attention path and a Hugging Face
BertModel of the same width with SDPA, all in one run.

    python bench/model.py                                  # GPU: base, bf16, 256×128 and 64×512
    python bench/model.py --device cpu --preset tiny --shapes 32x128   # the CPU figure

The released DNABERT-2 code cannot run here (it is not on disk and the model hub is unreachable);
its figure on an H100 is in ../shared/DESIGN.md: 710 k tokens/s at 256 × 128. Prints a table;
record it in BENCHMARKS.md with the device and date.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXAMPLE, genome_windows, timed, tokenizer_for  # noqa: E402

from dnabert2.model import build_model, preset  # noqa: E402


def hf_bert(config, device, dtype):
    from transformers import BertConfig, BertModel

    hf = BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                    num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                    intermediate_size=config.intermediate_size, max_position_embeddings=8192,
                    attn_implementation="sdpa")
    return BertModel(hf, add_pooling_layer=False).to(device, dtype).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None,
                        help="default: bf16 on a GPU, fp32 on a CPU")
    parser.add_argument("--shapes", default="256x128,64x512", help="batch x tokens, comma-separated")
    parser.add_argument("--genome", default=str(EXAMPLE))
    parser.add_argument("--tokenizer", help="tokenizer.json (default: learn one on the genome)")
    args = parser.parse_args()

    from dnabert2.devices import resolve_device

    device = resolve_device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    torch.manual_seed(0)
    model = build_model(preset(args.preset), "encoder").to(device, dtype).eval()
    peer = hf_bert(model.config, device, dtype)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}, torch {torch.__version__}, preset {args.preset}, {dtype}")
    print("| batch × tokens | model | tokens/s |\n|---|---|---|")
    tokenizer = tokenizer_for(Path(args.genome), args.tokenizer)
    for batch, tokens in (map(int, shape.split("x")) for shape in args.shapes.split(",")):
        # Windows long enough to hold `tokens` tokens, cut to exactly that many, as the released runs were.
        windows = genome_windows(Path(args.genome), tokenizer, batch, 8 * tokens, 10 * tokens)
        ids = torch.tensor([w[: tokens - 1] + [2] for w in windows], device=device)
        mask = torch.ones_like(ids)
        runs = {"dnabert2 (Triton attention)" if device.type == "cuda" else "dnabert2": ("auto", model)}
        if device.type == "cuda":
            runs["dnabert2 (PyTorch attention path)"] = ("torch", model)
        runs["Hugging Face BertModel, SDPA"] = (None, peer)
        for label, (backend, net) in runs.items():
            if backend:
                net.attention_backend = backend
            with torch.inference_mode():
                seconds = timed(lambda: net(ids, attention_mask=mask), device, repeats=10)
            print(f"| {batch} × {tokens} | {label} | {batch * tokens / seconds / 1e3:,.0f} k |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
