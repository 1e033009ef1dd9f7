"""Pure-PyTorch versions of the StyleGAN2 ops: FIR resampling, bias+activation, modulated conv.

They follow the semantics of NVIDIA's reference paths (`upfirdn2d`, `bias_act`, `conv2d_resample`,
`modulated_conv2d` in stylegan2-ada-pytorch) so that weights trained there give the same tensors
here, but they are written as plain torch calls: no compiled extension, no device assumptions.
"""
from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)

# owner module -> {name: (key, value)}; weak, so the cache never keeps a network alive, and
# kept off the module so that pickling or deep-copying a network does not carry it along.
_DERIVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_derived(owner, name: str, tensors, build):
    """`build()` (a function of `tensors` only), reused between calls while no gradient can
    flow to those tensors and none of them changed.

    Inference and inversion (G.requires_grad_(False), gradients w.r.t. the latents only) then
    skip weight-only work on every forward; training always rebuilds, so autograd sees the
    weights. "Changed" = in-place update (`_version`: optimiser steps, load_state_dict, copy_),
    new storage (`.to()`, `.data = ...`: data_ptr, device, dtype) or an inference-mode switch
    (an inference tensor cannot be saved for a later backward).
    """
    if any(t.is_inference() for t in tensors) or (
            torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        return build()  # (inference tensors have no version counter to key on)
    key = (torch.is_inference_mode_enabled(),) + tuple(
        (t._version, t.data_ptr(), t.device, t.dtype, t.shape) for t in tensors)
    store = _DERIVED.setdefault(owner, {})
    hit = store.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        value = build()
    store[name] = (key, value)
    return value


def setup_filter(taps=(1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """2-D FIR filter as the outer product of 1-D taps, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f


def _pad4(padding) -> list[int]:
    if isinstance(padding, int):
        return [padding] * 4
    if len(padding) == 2:
        px, py = padding
        return [px, px, py, py]
    return list(padding)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding=0, gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop), convolve with FIR filter `f`, downsample.

    `padding` is [x0, x1, y0, y1] in the upsampled image, as in NVIDIA's upfirdn2d.
    The filter is applied as a true convolution (flipped), like the reference.
    """
    c = x.shape[1]
    if f is None:
        f = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    px0, px1, py0, py1 = _pad4(padding)
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if f.ndim == 1:
        f = torch.outer(f, f)
    fh, fw = f.shape
    if up > 1:
        # Zero insertion followed by a true convolution is a stride-`up` transposed convolution
        # with the unflipped filter: same numbers, a quarter of the multiply-adds at up=2.
        # Its output is the full convolution; crop (or zero-extend) it to the requested padding.
        sx0, sx1 = fw - 1 - px0, fw - up - px1
        sy0, sy1 = fh - 1 - py0, fh - up - py1
        tx, ty = max(min(sx0, sx1), 0), max(min(sy0, sy1), 0)
        x = F.conv_transpose2d(x, f[None, None].expand(c, 1, fh, fw), stride=up, groups=c,
                               padding=[ty, tx])
        if (sx0, sx1, sy0, sy1) != (tx, tx, ty, ty):
            x = _pad_then_crop(x, [tx - sx0, tx - sx1, ty - sy0, ty - sy1])
        return x if down == 1 else x[:, :, ::down, ::down]
    conv_pad = 0
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        conv_pad = [py0, px0]  # let the conv pad: saves a full copy of x
    else:
        x = _pad_then_crop(x, [px0, px1, py0, py1])
    kernel = f.flip([0, 1])[None, None].expand(c, 1, fh, fw)
    # A strided convolution skips the outputs that downsampling would throw away.
    return F.conv2d(x, kernel, groups=c, padding=conv_pad, stride=down)


def _pad_then_crop(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    """Zero-pad the positive sides of [x0, x1, y0, y1], then crop the negative ones (padding
    first, so a crop reaching into the other side's padding is still valid)."""
    x = F.pad(x, [max(p, 0) for p in pads])
    return F.pad(x, [min(p, 0) for p in pads])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    fw = f.shape[-1]
    p = [(fw + up - 1) // 2, (fw - up) // 2] * 2
    return upfirdn2d(x, f, up=up, padding=p, gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    fw = f.shape[-1]
    p = [(fw - down + 1) // 2, (fw - down) // 2] * 2
    return upfirdn2d(x, f, down=down, padding=p)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear",
             gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """x + b (along dim 1), activation, times gain, clamped to [-clamp, clamp]."""
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
        default_gain = SQRT2
    elif act == "relu":
        x = F.relu(x)
        default_gain = SQRT2
    elif act == "linear":
        default_gain = 1.0
    else:
        raise ValueError(f"unknown activation {act!r}")
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                    down: int = 1, padding: int = 0, groups: int = 1) -> torch.Tensor:
    """Convolution fused with FIR up/downsampling, matching NVIDIA's conv2d_resample.

    Weights are used as correlation kernels (torch convention) for plain and strided convs and as
    transposed-conv kernels for upsampling, which is what NVIDIA's layers request.
    """
    out_ch, in_per_group, kh, kw = w.shape
    fw = 1 if f is None else f.shape[-1]
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0, py1 = px0, px1
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0, py1 = px0, px1

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return F.conv2d(x, w, groups=groups)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = F.conv2d(x, w, groups=groups)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return F.conv2d(x, w, stride=down, groups=groups)
    if up > 1:
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and px0 >= 0:
        return F.conv2d(x, w, padding=px0, groups=groups)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    x = F.conv2d(x, w, groups=groups)
    if down > 1:
        x = upfirdn2d(x, f, down=down)
    return x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: torch.Tensor | None = None, up: int = 1, padding: int = 0,
                     resample_filter: torch.Tensor | None = None, demodulate: bool = True,
                     fused: bool = True, bias: torch.Tensor | None = None, act: str = "linear",
                     gain: float = 1.0, clamp: float | None = None,
                     weight_sq: torch.Tensor | None = None,
                     shared_weight: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2 modulated convolution (+ weight demodulation), then noise, bias, activation.

    Equals NVIDIA's `modulated_conv2d` followed by `bias_act(act, gain, clamp)`, up to float
    rounding. fused=True builds one weight per sample and runs a grouped conv (NVIDIA's default);
    fused=False scales activations before and after one shared conv (faster on CPU at every
    batch size we measured, especially on channels-last tensors; see BENCHMARKS.md).

    Weight-only work can be passed in precomputed (layers cache it between inference calls):
    `weight_sq` = `demod_weight_sq(weight)`, `shared_weight` = the same values as `weight` in
    the memory layout the shared conv should see (`shared_conv_weight`).
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    # Scale after the conv: demodulation x activation gain (lrelu(a)*g == lrelu(a*g) for g > 0).
    out_scale = None
    if demodulate:
        # sum_{i,k} (w[o,i,k] s[n,i])^2 == s^2 @ (sum_k w^2)^T: a small matmul instead of
        # squaring an [N, O, I, k, k] tensor.
        wsq = demod_weight_sq(weight) if weight_sq is None else weight_sq
        out_scale = (styles.square() @ wsq + 1e-8).rsqrt() * gain
    elif gain != 1:
        out_scale = styles.new_full((n, out_ch), gain)

    if fused:
        scale = styles.unsqueeze(1) if out_scale is None else styles.unsqueeze(1) * out_scale.unsqueeze(2)
        w = weight.unsqueeze(0) * scale[..., None, None]
        y = conv2d_resample(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, in_ch, kh, kw),
                            f=resample_filter, up=up, padding=padding, groups=n)
        y = y.reshape(n, -1, *y.shape[2:])
        out_scale = None
    elif kh == kw == 1 and up == 1 and padding == 0 and \
            x.is_contiguous(memory_format=torch.channels_last):
        y = _modulated_1x1_channels_last(x, weight, styles)
    else:
        y = conv2d_resample(x * styles.reshape(n, -1, 1, 1),
                            weight if shared_weight is None else shared_weight,
                            f=resample_filter, up=up, padding=padding)

    # Bias and noise are added pre-scaled by the gain. The bias goes through addcmul as a
    # [1, C, 1, 1] broadcast: a full-size first argument would impose its memory format on the
    # result and drop channels-last tensors back to NCHW.
    # Without autograd, y (the conv's fresh output) is updated in place: no new activation-sized
    # buffers, which on CPU are fresh mmap'd pages (page faults) for the large layers.
    inplace = not torch.is_grad_enabled()
    if out_scale is not None:
        scale = out_scale.reshape(n, -1, 1, 1)
        if bias is None:
            y = y.mul_(scale) if inplace else y * scale
        else:
            b = (bias * gain).reshape(1, -1, 1, 1)
            y = torch.addcmul(b, y, scale, out=y) if inplace else torch.addcmul(b, y, scale)
    elif bias is not None:
        b = (bias * gain).reshape(1, -1, 1, 1)
        y = y.add_(b) if inplace else y + b
    if noise is not None:
        noise = noise * gain
        y = y.add_(noise) if inplace else y + noise
    if act == "lrelu":
        y = F.leaky_relu(y, 0.2, inplace=inplace)
    elif act != "linear":
        raise ValueError(f"unsupported activation {act!r}")
    if clamp is not None and clamp >= 0:
        y = y.clamp_(-clamp, clamp) if inplace else y.clamp(-clamp, clamp)
    return y


def _modulated_1x1_channels_last(x, weight, styles):
    """1x1 conv of x * styles as one batched matmul with per-sample weights.

    A channels-last x is already [N, H*W, I] in memory, so this reads x once instead of
    writing a modulated copy of it first; toRGB layers (3 outputs from up to 512 inputs at
    the highest resolutions) spend most of their time on that copy otherwise.
    """
    n, i, h, w = x.shape
    wmod = weight.reshape(1, -1, i) * styles.reshape(n, 1, i)  # [N, O, I]
    y = torch.bmm(x.permute(0, 2, 3, 1).reshape(n, h * w, i), wmod.transpose(1, 2))
    return y.reshape(n, h, w, -1).permute(0, 3, 1, 2)  # channels-last [N, O, H, W]


def demod_weight_sq(weight: torch.Tensor) -> torch.Tensor:
    """[I, O] sums over the kernel taps of weight**2: the weight-only part of demodulation."""
    return weight.square().sum(dim=[2, 3]).t()


def shared_conv_weight(weight: torch.Tensor, up: int, channels_last: bool) -> torch.Tensor:
    """`weight` (same values) laid out as oneDNN wants it for a channels-last input, so that
    conv2d_resample's conv does not copy it on every call. For up > 1 the conv is transposed
    and sees weight.transpose(0, 1): that view is made channels-last contiguous."""
    if not channels_last:
        return weight
    if up > 1:
        return weight.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)
    return weight.contiguous(memory_format=torch.channels_last)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
