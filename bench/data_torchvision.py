"""torchvision side of `locus bench data --photos`: DINO's multi-crop recipe with PIL, and the photo maker.

  /usr/bin/python3 bench/data_torchvision.py make DIR [N]        N JPEGs (default 400) at 500x375 / 375x500
  /usr/bin/python3 bench/data_torchvision.py bench DIR [--batches N] [--warmup N] [--workers W] [--batch B]

The transforms follow facebookresearch/dino's DataAugmentationDINO (main_dino.py): two 224-px global
crops (scale 0.4-1, bicubic; flip, colour jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2; PIL
Gaussian blur with radius U(0.1, 2) with p 1.0 / 0.1; solarisation p 0.2 on the second) and eight
96-px local crops (scale 0.05-0.4, blur p 0.5), then ToTensor + ImageNet normalisation; a
DataLoader with shuffle, drop_last and W worker processes. The last line is one JSON object.
"""
import json
import os
import random
import sys
import time


def make(out, n=400):
    import numpy as np
    import skimage.data as sd
    from PIL import Image

    names = ['astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry',
             'motorcycle_left', 'motorcycle_right', 'retina', 'colorwheel', 'cat', 'logo']
    srcs = []
    for name in names:
        f = getattr(sd, name, None)
        if f is None:
            continue
        try:
            a = np.asarray(f())
        except Exception:  # a sample that needs a download (pooch) is skipped
            continue
        if a.ndim == 3 and a.shape[2] >= 3 and min(a.shape[:2]) >= 200:
            srcs.append(Image.fromarray(a[:, :, :3].astype('uint8')))
    if not srcs:
        sys.exit('no colour sample photos found in skimage.data (Debian python3-skimage)')
    os.makedirs(out, exist_ok=True)
    rng = random.Random(0)
    for i in range(n):
        im = srcs[i % len(srcs)]
        w, h = (500, 375) if i % 4 else (375, 500)
        W, H = im.size
        s = rng.uniform(0.6, 1.0)  # a random crop of the photo with the target aspect, then resized
        cw = min(W, int(round(s * min(W, H * w / h))))
        ch = min(H, int(round(cw * h / w)))
        x0 = rng.randint(0, W - cw)
        y0 = rng.randint(0, H - ch)
        c = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
        if rng.random() < 0.5:
            c = c.transpose(Image.FLIP_LEFT_RIGHT)
        c.save(os.path.join(out, f'photo{i:04d}.jpg'), quality=90)
    print(json.dumps({'made': n, 'dir': out, 'sources': len(srcs)}))


def bench(root, batches=20, warmup=3, workers=2, batch=64):
    import torch
    from PIL import Image, ImageFilter, ImageOps
    from torchvision import transforms as T

    torch.set_num_threads(1)

    class Blur:
        def __init__(self, p):
            self.p = p

        def __call__(self, img):
            if random.random() >= self.p:
                return img
            return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))

    class Solarize:
        def __init__(self, p):
            self.p = p

        def __call__(self, img):
            return ImageOps.solarize(img) if random.random() < self.p else img

    colour = T.Compose([
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ])
    norm = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    bic = T.InterpolationMode.BICUBIC
    g1 = T.Compose([T.RandomResizedCrop(224, scale=(0.4, 1.0), interpolation=bic), colour, Blur(1.0), norm])
    g2 = T.Compose([T.RandomResizedCrop(224, scale=(0.4, 1.0), interpolation=bic), colour, Blur(0.1),
                    Solarize(0.2), norm])
    loc = T.Compose([T.RandomResizedCrop(96, scale=(0.05, 0.4), interpolation=bic), colour, Blur(0.5), norm])

    files = sorted(os.path.join(root, f) for f in os.listdir(root)
                   if f.lower().endswith(('.jpg', '.jpeg', '.png', '.webp')))
    need = batch * (warmup + batches)

    class Photos(torch.utils.data.Dataset):
        def __len__(self):
            return need

        def __getitem__(self, i):
            with open(files[i % len(files)], 'rb') as f:
                img = Image.open(f).convert('RGB')
            return [g1(img), g2(img)] + [loc(img) for _ in range(8)]

    dl = torch.utils.data.DataLoader(Photos(), batch_size=batch, shuffle=True, num_workers=workers,
                                     drop_last=True, persistent_workers=False)
    import resource

    def cpu():
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    c0 = cpu()
    k = 0
    t0 = time.perf_counter()
    it = iter(dl)
    for views in it:
        assert views[0].shape == (batch, 3, 224, 224) and views[9].shape == (batch, 3, 96, 96)
        k += 1
        if k == warmup:
            t0 = time.perf_counter()
    s = time.perf_counter() - t0
    del it  # joins the worker processes, so that their CPU time is in RUSAGE_CHILDREN
    cpu_per_image = (cpu() - c0) / (k * batch)
    print(json.dumps({'torchvision_images_per_s': (k - warmup) * batch / s, 'batches': k - warmup,
                      'torchvision_cpu_ms_per_image': cpu_per_image * 1000,
                      'warmup': warmup, 'workers': workers, 'batch': batch, 'files': len(files),
                      'torch': torch.__version__}))


if __name__ == '__main__':
    a = sys.argv[1:]
    if not a or a[0] not in ('make', 'bench'):
        sys.exit(__doc__)
    if a[0] == 'make':
        make(a[1], int(a[2]) if len(a) > 2 else 400)
    else:
        opts = {'batches': 20, 'warmup': 3, 'workers': 2, 'batch': 64}
        rest = a[2:]
        for j in range(0, len(rest), 2):
            key = rest[j].lstrip('-')
            if key not in opts or j + 1 >= len(rest):
                sys.exit(f'unknown or valueless option {rest[j]} (allowed: --batches --warmup --workers --batch)')
            opts[key] = int(rest[j + 1])
        bench(a[1], **opts)
