"""PyTorch side of `npm run bench:engine` (run with Debian's /usr/bin/python3, torch 1.13).

The workload of research/engine-bench.md: a ViT-Tiny-like encoder (32x32x3 input, patch 4, dim 192,
depth 6, 3 heads, MLP 768, pre-LayerNorm eps 1e-6, exact GELU, learned position embedding, CLS token)
with a head Linear(192->384)-GELU-Linear(384->256); loss = cross-entropy of softmax(student / 0.1)
against a fixed random target distribution; fixed random batch of 64; AdamW (lr 1e-4, weight decay
0.04, betas 0.9/0.999, eps 1e-8); float32. The patch embedding is DINO's stride-4 conv (the same map as
reshape + linear). Weights, batch and targets come from --init (a safetensors file written by the Locus
side), so both engines run the same computation from the same starting point.

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


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ViT()
        self.head = Mlp(192, 384, 256)

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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t = read_safetensors(args.init)
    net = Net()
    net.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("w.")}, strict=True)
    x, target = t["x"], t["target"]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.04, betas=(0.9, 0.999), eps=1e-8)

    times, losses = [], []
    cpu0 = time.process_time()
    for _ in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x) / 0.1, target)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
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
        "params": sum(p.numel() for p in net.parameters()),
        "matmul_gflops": matmul_gflops(),
    }
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["total_cpu_s"] = ru.ru_utime + ru.ru_stime
    print(json.dumps(out))


if __name__ == "__main__":
    main()
