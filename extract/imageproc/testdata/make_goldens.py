#!/usr/bin/python3
"""Make the Pillow golden files for github.com/cl-dev/cl/extract/imageproc.

Run with Debian's Python (Pillow 9.4, numpy 1.24, torch 1.13):

    cd extract/imageproc/testdata && /usr/bin/python3 make_goldens.py

It writes small synthetic test images in every mode the Go package must read
(img/: PNG, JPEG, GIF, BMP, WebP, TIFF), and Pillow's answers for them
(golden/*.npy):

  golden/<image>.rgb.npy            Image.open(f).convert("RGB"), uint8 [H,W,3]
  golden/<image>.<filter>.<W>x<H>.npy   convert("RGB").resize((W,H), filter), uint8
  golden/<image>.vit.crop.npy       torchvision-0.14 Resize(256, bicubic) +
                                    CenterCrop(224) of the RGB image, uint8 [224,224,3]
  golden/cifar32.png.vit.npy        ... + ToTensor, float32 [3,224,224]
  golden/<image>.imagenet.npy       Resize(256, bilinear) + CenterCrop(224) +
                                    ToTensor + Normalize(ImageNet mean/std),
                                    float32 [3,224,224]

torchvision is not installed here, so its two transforms are re-implemented
below from torchvision 0.14 (functional_pil.resize, functional.center_crop);
ToTensor and Normalize run in torch exactly as torchvision does them.
Everything is seeded: running it twice gives identical files.
"""
import io
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMG = os.path.join(HERE, "img")
GOLD = os.path.join(HERE, "golden")
os.makedirs(IMG, exist_ok=True)
os.makedirs(GOLD, exist_ok=True)

rng = np.random.default_rng(1993)


def photo(w, h, seed):
    """A smooth, photo-like RGB picture: gradients, blobs, edges, mild noise."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        img[..., c] = 90 + 60 * np.sin(x / (17 + 7 * c) + c) * np.cos(y / (23 - 3 * c))
    for _ in range(12):
        cx, cy = r.uniform(0, w), r.uniform(0, h)
        rad = r.uniform(5, max(w, h) / 4)
        col = r.uniform(0, 255, 3)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        m = np.clip(rad - d, 0, 1)[..., None]
        img = img * (1 - m) + col * m
    # a few hard-edged rectangles (chroma edges stress JPEG upsampling)
    for _ in range(4):
        x0, y0 = int(r.uniform(0, w - 8)), int(r.uniform(0, h - 8))
        img[y0:y0 + int(r.uniform(4, h / 3)), x0:x0 + int(r.uniform(4, w / 3))] = r.uniform(0, 255, 3)
    img += r.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png16(path, arr, colortype):
    """Write a 16-bit PNG by hand (Pillow cannot write 16-bit RGB)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colortype, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- test images
base = photo(64, 48, 1)
Image.fromarray(base).save(os.path.join(IMG, "rgb.png"))
Image.fromarray(photo(32, 32, 2)).save(os.path.join(IMG, "cifar32.png"))
Image.fromarray(photo(50, 70, 3)[..., 1]).save(os.path.join(IMG, "l.png"))
Image.fromarray(photo(1 + 40, 30, 4)[..., 0] > 128).save(os.path.join(IMG, "bw.png"))
la = np.dstack([photo(45, 60, 5)[..., 0], rng.integers(0, 256, (60, 45), dtype=np.uint8)])
Image.fromarray(la, "LA").save(os.path.join(IMG, "la.png"))
rgba = np.dstack([photo(60, 44, 6), rng.integers(0, 256, (44, 60), dtype=np.uint8)])
Image.fromarray(rgba, "RGBA").save(os.path.join(IMG, "rgba.png"))
p = Image.fromarray(photo(60, 40, 7)).quantize(colors=37)
p.save(os.path.join(IMG, "p.png"))
p.save(os.path.join(IMG, "p_trns.png"), transparency=5)
p.save(os.path.join(IMG, "p_alpha.png"), transparency=bytes(range(0, 256, 7)))
p.save(os.path.join(IMG, "p.gif"))
p.save(os.path.join(IMG, "p_trns.gif"), transparency=3)
p.save(os.path.join(IMG, "p.bmp"))
Image.fromarray(photo(70, 50, 8)).save(os.path.join(IMG, "rgb.bmp"))
g16 = (photo(40, 30, 9)[..., 0].astype(np.uint16) * 4).astype(np.uint16)  # 0..1020: half clips
g16[0, :5] = [0, 255, 256, 40000, 65535]
png16(os.path.join(IMG, "gray16.png"), g16, 0)
rgb16 = photo(40, 30, 10).astype(np.uint16) * 257 + rng.integers(0, 257, (30, 40, 3)).astype(np.uint16)
png16(os.path.join(IMG, "rgb16.png"), rgb16, 2)
Image.fromarray(photo(48, 40, 11)).convert("CMYK").save(os.path.join(IMG, "cmyk.jpg"), quality=92)
ph = photo(300, 200, 12)
Image.fromarray(ph).save(os.path.join(IMG, "photo.jpg"), quality=90)
for sub, name in ((0, "444"), (1, "422"), (2, "420")):
    Image.fromarray(photo(61, 45, 13)).save(os.path.join(IMG, "ycc%s.jpg" % name), quality=90, subsampling=sub)
Image.fromarray(photo(61, 45, 16)).save(os.path.join(IMG, "progressive.jpg"), quality=85, progressive=True)
Image.fromarray(photo(61, 45, 14)[..., 2]).save(os.path.join(IMG, "gray.jpg"), quality=90)
Image.fromarray(photo(56, 40, 15)).save(os.path.join(IMG, "lossless.webp"), lossless=True)
Image.fromarray(photo(56, 40, 15)).save(os.path.join(IMG, "lossy.webp"), quality=80)
# TIFF (Go: golang.org/x/image/tiff): compressions and the usual modes
tif = photo(52, 38, 17)
Image.fromarray(tif).save(os.path.join(IMG, "rgb.tif"))
Image.fromarray(tif).save(os.path.join(IMG, "rgb_lzw.tiff"), compression="tiff_lzw")
Image.fromarray(tif).save(os.path.join(IMG, "rgb_deflate.tif"), compression="tiff_adobe_deflate")
Image.fromarray(tif[..., 1]).save(os.path.join(IMG, "l.tif"))
Image.fromarray(tif).quantize(colors=29).save(os.path.join(IMG, "p.tif"))
Image.fromarray(np.dstack([tif, rng.integers(0, 256, (38, 52), dtype=np.uint8)]), "RGBA").save(os.path.join(IMG, "rgba.tif"))
Image.fromarray(tif[..., 0] > 128).save(os.path.join(IMG, "bw.tif"))
g16t = (tif[..., 2].astype(np.uint16) * 4).astype(np.uint16)  # 0..1020: half clips
g16t[0, :4] = [0, 255, 256, 65535]
Image.fromarray(g16t, "I;16").save(os.path.join(IMG, "gray16.tif"))

# ------------------------------------------------------------ torchvision 0.14


def tv_resize(img, size, interpolation):
    """torchvision.transforms.functional_pil.resize with an int size."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (w, h) == (new_w, new_h):
        return img
    return img.resize((new_w, new_h), interpolation)


def tv_center_crop(img, size):
    """torchvision.transforms.functional.center_crop (image larger than crop)."""
    w, h = img.size
    assert w >= size and h >= size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def to_tensor(img):
    t = torch.from_numpy(np.array(img, np.uint8, copy=True))
    t = t.view(img.size[1], img.size[0], 3).permute((2, 0, 1)).contiguous()
    return t.to(dtype=torch.float32).div(255)


def normalize(t, mean, std):
    mean = torch.as_tensor(mean, dtype=t.dtype)
    std = torch.as_tensor(std, dtype=t.dtype)
    return t.sub_(mean[:, None, None]).div_(std[:, None, None])


def save(name, arr):
    np.save(os.path.join(GOLD, name + ".npy"), np.ascontiguousarray(arr))


# --------------------------------------------------------------------- goldens
for f in sorted(os.listdir(IMG)):
    im = Image.open(os.path.join(IMG, f))
    rgb = im.convert("RGB")
    save(f + ".rgb", np.asarray(rgb))
    print("%-14s mode %-6s %dx%d" % (f, im.mode, im.size[0], im.size[1]))

# Resampling from identical RGB input (must be bit-exact in Go).
FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}
for f, sizes in (
    ("rgb.png", [(37, 29), (150, 101), (64, 20), (13, 48), (7, 5), (64, 48), (1, 1)]),
    ("cifar32.png", [(256, 256), (33, 31)]),
    ("photo.jpg", [(155, 97), (97, 61), (300, 37)]),
    ("l.png", [(31, 43)]),
):
    rgb = Image.open(os.path.join(IMG, f)).convert("RGB")
    for fname, flt in FILTERS.items():
        for w, h in sizes:
            save("%s.%s.%dx%d" % (f, fname, w, h), np.asarray(rgb.resize((w, h), flt)))

# Whole pipelines.
for f in ("cifar32.png", "photo.jpg", "ycc420.jpg", "p_trns.gif"):
    rgb = Image.open(os.path.join(IMG, f)).convert("RGB")
    crop = tv_center_crop(tv_resize(rgb, 256, Image.BICUBIC), 224)
    if f == "cifar32.png":
        save(f + ".vit", to_tensor(crop).numpy())
    else:
        save(f + ".vit.crop", np.asarray(crop))
rgb = Image.open(os.path.join(IMG, "photo.jpg")).convert("RGB")
t = to_tensor(tv_center_crop(tv_resize(rgb, 256, Image.BILINEAR), 224))
save("photo.jpg.imagenet", normalize(t, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).numpy())
