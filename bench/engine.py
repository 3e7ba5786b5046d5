"""PyTorch side of `npm run bench:engine` (run with Debian's /usr/bin/python3, torch 1.13).

The workload of research/engine-bench.md: a ViT-Tiny-like encoder (32x32x3 input, patch 4, dim 192,
depth 6, 3 heads, MLP 768, pre-LayerNorm eps 1e-6, exact GELU, learned position embedding, CLS token)
with a head Linear(192->384)-GELU-Linear(384->256); loss = cross-entropy of softmax(student / 0.1)
against a fixed random target distribution; fixed random batch of 64; AdamW (lr 1e-4, weight decay
0.04, betas 0.9/0.999, eps 1e-8); float32. The patch embedding is DINO's stride-4 conv (the same map as
reshape + linear). Weights, batch and targets come from --init (a safetensors file written by the Locus
side), so both engines run the same computation from the same starting point.

--model vit_small_patch16_224 (issue 14): ViT-S/16 at 224 px (dim 384, depth 12, 6 heads) with the head
Linear(384->768)-GELU-Linear(768->256). --mode eval times the backbone's forward under torch.no_grad()
and reports the mean of the CLS features' first 4 channels. --precision bf16|fp16: torch.autocast around the
forward (fp16 with torch.cuda.amp.GradScaler semantics); --device cuda needs a CUDA PyTorch.

Prints one JSON line: per-step times, the median of the timed steps, losses, peak RSS, matmul GFLOP/s.
"""
import argparse
import json
import resource
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ST = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    data = bytearray(raw[8 + n :])
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = torch.frombuffer(data[b:e], dtype=ST[info["dtype"]]).clone().reshape(info["shape"])
    return out


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).mul(self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, out):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class ViT(nn.Module):
    def __init__(self, img=32, patch=4, dim=192, depth=6, heads=3):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


MODELS = {
    "tiny": dict(img=32, patch=4, dim=192, depth=6, heads=3),
    "vit_small_patch16_224": dict(img=224, patch=16, dim=384, depth=12, heads=6),
}


class Net(nn.Module):
    def __init__(self, model="tiny"):
        super().__init__()
        m = MODELS[model]
        self.backbone = ViT(**m)
        self.head = Mlp(m["dim"], 2 * m["dim"], 256)

    def forward(self, x):
        return self.head(self.backbone(x))


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def matmul_gflops(n=1024, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / median(ts) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--model", default="tiny", choices=sorted(MODELS))
    ap.add_argument("--mode", default="train", choices=["train", "eval"])
    ap.add_argument("--batch", type=int, default=64)  # the batch is in --init; recorded only
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    t = read_safetensors(args.init)
    net = Net(args.model)
    net.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("w.")}, strict=True)
    net.to(dev)
    x, target = t["x"].to(dev), t["target"].to(dev)
    del t
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    amp = lambda: torch.autocast(args.device, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    train = args.mode == "train"
    if train:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.04, betas=(0.9, 0.999), eps=1e-8)
        scaler = torch.cuda.amp.GradScaler(enabled=args.precision == "fp16")
    else:
        net.eval()

    times, losses = [], []
    cpu0 = time.process_time()
    for _ in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        if train:
            opt.zero_grad(set_to_none=True)
            with amp():
                loss = F.cross_entropy(net(x).float() / 0.1, target)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            value = loss.item()
        else:
            with torch.no_grad(), amp():
                value = net.backbone(x).float()[:, :4].mean().item()
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(value)
    cpu = time.process_time() - cpu0
    timed = times[args.warmup :]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    out = {
        "engine": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_s": median(timed),
        "times": times,
        "losses": losses,
        "peak_rss_mb": peak,
        "cpu_s": cpu,
        "loop_s": sum(times),
        "params": sum(p.numel() for p in (net.parameters() if train else net.backbone.parameters())),
        "matmul_gflops": matmul_gflops(),
    }
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["total_cpu_s"] = ru.ru_utime + ru.ru_stime
    print(json.dumps(out))


if __name__ == "__main__":
    main()
