"""Pretraining throughput: tokens/s of one optimiser step (forward, backward, fused AdamW) of the
masked LM on real BPE windows, beside a Hugging Face BertForMaskedLM (SDPA) of the same width in the
same run. Batches are what `dnabert2 pretrain` feeds the model: windows drawn from the genome,
15% masked, packed without padding.

    python bench/pretrain.py                                 # GPU: base preset, bf16, 256 × 128
    python bench/pretrain.py --device cpu --preset tiny --batch 32   # the CPU figure

The released DNABERT-2 code trains at 238 k tokens/s at 256 × 128 on an H100 (../shared/DESIGN.md);
it cannot run here. Prints a table; record it in BENCHMARKS.md with the device and date.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXAMPLE, genome_windows, timed, tokenizer_for  # noqa: E402

from dnabert2.devices import autocast as mixed_precision  # noqa: E402
from dnabert2.devices import resolve_device, resolve_precision  # noqa: E402
from dnabert2.model import build_model, preset  # noqa: E402
from dnabert2.pretrain.data import mask_tokens, pack  # noqa: E402
from dnabert2.pretrain.train import flops_per_token, optimiser, peak_flops  # noqa: E402


def hf_masked_lm(config, device):
    from transformers import BertConfig, BertForMaskedLM

    hf = BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                    num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                    intermediate_size=config.intermediate_size, attn_implementation="sdpa")
    return BertForMaskedLM(hf).to(device).train()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch", type=int, default=256, help="windows per step")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per window")
    parser.add_argument("--genome", default=str(EXAMPLE))
    parser.add_argument("--tokenizer", help="tokenizer.json (default: learn one on the genome)")
    parser.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    args = parser.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    bf16 = precision == "bf16"
    autocast = mixed_precision(device, precision)
    tokenizer = tokenizer_for(Path(args.genome), args.tokenizer)
    windows = genome_windows(Path(args.genome), tokenizer, args.batch, 8 * args.tokens, 10 * args.tokens)
    rng = np.random.default_rng(0)
    examples = [mask_tokens(w[: args.tokens - 1] + [2], rng, tokenizer.get_vocab_size()) for w in windows]
    # As the trainer feeds it: the ids on the device, labels and cu_seqlens left on the CPU (where
    # the model finds the scored positions and sequence bounds without waiting for the GPU).
    packed = pack(examples, 10**9)[0]
    packed["input_ids"] = packed["input_ids"].to(device)
    ids = packed["input_ids"].view(args.batch, args.tokens)
    labels = packed["labels"].view(args.batch, args.tokens).to(device)

    torch.manual_seed(0)
    model = build_model(preset(args.preset, vocab_size=tokenizer.get_vocab_size()), "mlm").to(device).train()
    runs = {"dnabert2": model}
    if args.compile:
        runs["dnabert2, torch.compile"] = torch.compile(model, dynamic=True)
    peer = hf_masked_lm(model.config, device)
    tokens = args.batch * args.tokens
    peak = peak_flops(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}, torch {torch.__version__}, preset {args.preset}, {'bf16' if bf16 else 'fp32'}, "
          f"{args.batch} × {args.tokens} tokens")
    print("| model | tokens/s | MFU |\n|---|---:|---:|")

    def report(label, step, net):
        seconds = timed(step, device, repeats=10)
        mfu = f"{tokens / seconds * flops_per_token(net, args.tokens) / peak:.0%}" if peak else "–"
        print(f"| {label} | {tokens / seconds / 1e3:,.0f} k | {mfu} |")
        sys.stdout.flush()

    for label, net in runs.items():
        opt = optimiser(model, 5e-4, (0.9, 0.98), 1e-6, 1e-5, device)

        def step(net=net, opt=opt):
            with autocast:
                loss = net(packed["input_ids"], labels=packed["labels"], cu_seqlens=packed["cu_seqlens"],
                           max_seqlen=packed["max_seqlen"]).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        report(label, step, model)

    peer_opt = optimiser(peer, 5e-4, (0.9, 0.98), 1e-6, 1e-5, device)

    def peer_step():
        with autocast:
            loss = peer(input_ids=ids, labels=labels).loss
        loss.backward()
        peer_opt.step()
        peer_opt.zero_grad(set_to_none=True)

    report("Hugging Face BertForMaskedLM, SDPA", peer_step, peer)


if __name__ == "__main__":
    main()
