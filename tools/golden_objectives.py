#!/usr/bin/env python3
"""Golden values for the contrastive objectives (CLEFT / open_clip InfoNCE, MedCLIP, ConVIRT, GLoRIA).

    python tools/golden_objectives.py [--out fixtures/golden/objectives.json]

Needs only torch. Inputs are generated with torch.manual_seed(0) on CPU; all inputs are stored in the
JSON, so the Rust tests read them instead of regenerating them. Every loss is computed twice from the
same f32 inputs: in float32 (`outputs`, what a f32 implementation should reproduce to ~1e-6
relative) and in float64 (`outputs_f64`, the exact reference). Gradients (float64) of the CLEFT
loss w.r.t. the normalised embeddings and logit_scale are stored too.
"""
from __future__ import annotations

import argparse
import json
import math
import os

import torch
import torch.nn.functional as F

B, D, C = 6, 8, 5
LOGIT_SCALE = math.log(1 / 0.07)
CONVIRT_LAMBDA, CONVIRT_TAU = 0.75, 0.1
GLORIA_TEMP = 10.0


def clip_losses(img, txt, logit_scale):
    s = logit_scale.exp() * img @ txt.T  # logits_per_image [B, B]
    target = torch.arange(img.shape[0])
    ce_i = F.cross_entropy(s, target)  # image -> text, mean over rows
    ce_t = F.cross_entropy(s.T, target)  # text -> image
    return s, ce_i, ce_t


def medclip_loss(img, txt, logit_scale, img_labels, txt_labels):
    logits = logit_scale.exp() * img @ txt.T
    label_sim = img_labels @ txt_labels.T

    def soft_xent(inp, target):
        return -(target * F.log_softmax(inp, dim=1)).sum() / inp.shape[0]

    image_loss = soft_xent(logits, F.softmax(label_sim, dim=1))
    caption_loss = soft_xent(logits.T, F.softmax(label_sim.T, dim=1))
    return logits, label_sim, image_loss, caption_loss, (image_loss + caption_loss) / 2


def convirt_loss(img_raw, txt_raw, lam=CONVIRT_LAMBDA, tau=CONVIRT_TAU):
    sim = F.normalize(img_raw, dim=-1) @ F.normalize(txt_raw, dim=-1).T / tau
    target = torch.arange(img_raw.shape[0])
    l_i2t = F.cross_entropy(sim, target)
    l_t2i = F.cross_entropy(sim.T, target)
    return sim, l_i2t, l_t2i, lam * l_i2t + (1 - lam) * l_t2i


def gloria_global(img_raw, txt_raw, temp=GLORIA_TEMP, eps=1e-8):
    # GLoRIA global_loss: cosine similarity (norms clamped at eps) * temp3, CE both ways, summed
    num = img_raw @ txt_raw.T
    den = (img_raw.norm(dim=1, keepdim=True) * txt_raw.norm(dim=1, keepdim=True).T).clamp(min=eps)
    scores = num / den * temp
    target = torch.arange(img_raw.shape[0])
    l0 = F.cross_entropy(scores, target)
    l1 = F.cross_entropy(scores.T, target)
    return scores, l0, l1, l0 + l1


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def compute(img_raw, txt_raw, img, txt, img_labels, txt_labels, dtype):
    img_raw, txt_raw, img, txt = (t.to(dtype) for t in (img_raw, txt_raw, img, txt))
    img_labels, txt_labels = img_labels.to(dtype), txt_labels.to(dtype)
    ls = torch.tensor(LOGIT_SCALE, dtype=dtype)
    s, ce_i, ce_t = clip_losses(img, txt, ls)
    m_logits, m_sim, m_img, m_cap, m_loss = medclip_loss(img, txt, ls, img_labels, txt_labels)
    c_sim, c_i2t, c_t2i, c_loss = convirt_loss(img_raw, txt_raw)
    g_scores, g0, g1, g_loss = gloria_global(img_raw, txt_raw)
    return {
        "clip_logits_per_image": flat(s),
        "clip_ce_image_to_text": float(ce_i),
        "clip_ce_text_to_image": float(ce_t),
        "clip_loss_sum": float(ce_i + ce_t),
        "clip_loss_mean": float((ce_i + ce_t) / 2),
        "medclip_logits_per_image": flat(m_logits),
        "medclip_label_sim": flat(m_sim),
        "medclip_image_loss": float(m_img),
        "medclip_caption_loss": float(m_cap),
        "medclip_loss": float(m_loss),
        "convirt_sim_over_tau": flat(c_sim),
        "convirt_loss_image_to_text": float(c_i2t),
        "convirt_loss_text_to_image": float(c_t2i),
        "convirt_loss": float(c_loss),
        "gloria_global_scores": flat(g_scores),
        "gloria_global_loss0": float(g0),
        "gloria_global_loss1": float(g1),
        "gloria_global_loss": float(g_loss),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "golden", "objectives.json"))
    a = ap.parse_args()

    torch.manual_seed(0)
    img_raw = torch.randn(B, D, dtype=torch.float32)
    txt_raw = torch.randn(B, D, dtype=torch.float32)
    labels_img = (torch.rand(B, C) < 0.4).to(torch.float32)
    labels_txt = labels_img.clone()  # paired captions carry the same labels (MedCLIP's usual case)
    labels_txt[0] = (torch.rand(C) < 0.5).to(torch.float32)  # ... except one to break symmetry
    img = F.normalize(img_raw, dim=-1)
    txt = F.normalize(txt_raw, dim=-1)

    out32 = compute(img_raw, txt_raw, img, txt, labels_img, labels_txt, torch.float32)
    out64 = compute(img_raw, txt_raw, img, txt, labels_img, labels_txt, torch.float64)

    # gradients of the CLEFT loss (sum) in float64, w.r.t. normalised embeddings and logit_scale
    i64 = img.to(torch.float64).requires_grad_(True)
    t64 = txt.to(torch.float64).requires_grad_(True)
    ls64 = torch.tensor(LOGIT_SCALE, dtype=torch.float64, requires_grad=True)
    _, ce_i, ce_t = clip_losses(i64, t64, ls64)
    (ce_i + ce_t).backward()

    doc = {
        "description": "Golden values for contrastive objectives; generated by tools/golden_objectives.py",
        "generator": {"torch": torch.__version__, "seed": 0,
                      "recipe": "torch.manual_seed(0); img_raw=randn(B,D); txt_raw=randn(B,D); "
                                "labels_img=(rand(B,C)<0.4); labels_txt=labels_img; labels_txt[0]=(rand(C)<0.5)"},
        "layout": "all matrices are row-major flattened lists; shapes given in 'shapes'",
        "shapes": {"img_raw": [B, D], "txt_raw": [B, D], "img": [B, D], "txt": [B, D],
                   "labels_img": [B, C], "labels_txt": [B, C], "*_logits_per_image": [B, B],
                   "medclip_label_sim": [B, B], "convirt_sim_over_tau": [B, B],
                   "gloria_global_scores": [B, B]},
        "inputs": {
            "B": B, "D": D, "num_labels": C,
            "img_raw": flat(img_raw), "txt_raw": flat(txt_raw),
            "img": flat(img), "txt": flat(txt),
            "labels_img": flat(labels_img), "labels_txt": flat(labels_txt),
            "logit_scale": LOGIT_SCALE,
            "logit_scale_f32": float(torch.tensor(LOGIT_SCALE, dtype=torch.float32)),
            "convirt_lambda": CONVIRT_LAMBDA, "convirt_tau": CONVIRT_TAU,
            "gloria_temp": GLORIA_TEMP,
        },
        "formulas": {
            "normalisation": "img = img_raw / ||img_raw||_2 (row-wise, F.normalize eps 1e-12); same for txt",
            "CE": "CE(X, arange) = mean_i [ logsumexp_j X[i,j] - X[i,i] ]",
            "clip_logits_per_image": "s = exp(logit_scale) * img @ txt^T  (rows = images)",
            "clip_loss_sum": "CE(s, arange) + CE(s^T, arange)   <- CLEFT (summed, no clamp of logit_scale)",
            "clip_loss_mean": "(CE(s, arange) + CE(s^T, arange)) / 2   <- open_clip ClipLoss",
            "medclip_loss": "L = exp(logit_scale) * img @ txt^T; S = labels_img @ labels_txt^T; "
                            "image_loss = -sum_ij softmax_row(S)[i,j] * log_softmax_row(L)[i,j] / B; "
                            "caption_loss = -sum_ij softmax_row(S^T)[i,j] * log_softmax_row(L^T)[i,j] / B; "
                            "loss = (image_loss + caption_loss) / 2  (MedCLIP medclip/losses.py "
                            "ImageTextContrastiveLoss._soft_clip_loss/_soft_xent_loss; MedCLIP clamps "
                            "logit_scale to [0, 4.6052] before exp, inactive here)",
            "convirt_loss": "sim = cos(img_raw_i, txt_raw_j) / tau; loss = lambda * CE(sim, arange) + "
                            "(1 - lambda) * CE(sim^T, arange); lambda weights image->text",
            "gloria_global_loss": "scores = (img_raw @ txt_raw^T) / clamp(||img_raw_i|| * ||txt_raw_j||, 1e-8) * 10; "
                                  "loss = CE(scores, arange) + CE(scores^T, arange)",
        },
        "outputs": out32,
        "outputs_f64": out64,
        "grads_f64_clip_loss_sum": {
            "d_img": flat(i64.grad), "d_txt": flat(t64.grad), "d_logit_scale": float(ls64.grad),
            "note": "gradients of clip_loss_sum w.r.t. the normalised img, txt (treated as leaves) and logit_scale",
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out}")
    for k in ("clip_loss_sum", "clip_loss_mean", "medclip_loss", "convirt_loss", "gloria_global_loss"):
        print(f"  {k}: f32={out32[k]:.9g} f64={out64[k]:.12g}")


if __name__ == "__main__":
    main()
