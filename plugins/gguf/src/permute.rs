//! Undoing llama.cpp's RoPE row permutation of the Q and K projections.
//!
//! llama.cpp's `convert_hf_to_gguf.py` permutes the rows of `q_proj`/`k_proj` so that its
//! interleaved ("GPT-J style") RoPE matches Hugging Face's rotate-half RoPE:
//!
//! ```python
//! w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)
//! ```
//!
//! Hugging Face transformers undoes this when loading a GGUF (`LlamaTensorProcessor.
//! _reverse_permute_weights` in `modeling_gguf_pytorch_utils.py`):
//!
//! ```python
//! dim = w.shape[0] // n_head // 2
//! w.reshape(n_head, dim, 2, *rest).swapaxes(2, 1).reshape(w.shape)
//! ```
//!
//! with `n_head = num_attention_heads` for `attn_q` and `n_head = num_key_value_heads` for
//! `attn_k`. Row-wise: within each head of `2 * dim` rows, output row `b * dim + a` is input
//! row `2 * a + b` (`a < dim`, `b < 2`).

use crate::error::{GgufError, Result};
use crate::reader::F32Tensor;

fn check(len: usize, rows: usize, n_head: usize) -> Result<(usize, usize)> {
    if rows == 0 || n_head == 0 || !rows.is_multiple_of(2 * n_head) || !len.is_multiple_of(rows) {
        return Err(GgufError::InvalidShape(format!(
            "cannot (un)permute {len} values as {rows} rows for {n_head} heads: rows must be a \
             multiple of 2 * n_head and divide the element count"
        )));
    }
    Ok((rows / n_head / 2, len / rows))
}

/// Undoes llama.cpp's Q/K row permutation, exactly as transformers' `_reverse_permute_weights`.
///
/// `weights` is row-major with `rows` rows (PyTorch shape `[rows, ...]`, e.g. `[out, in]` for a
/// weight or `[out]` for a bias); `n_head` is the number of heads these rows hold
/// (`head_count` for `attn_q`, `head_count_kv` for `attn_k`).
pub fn reverse_permute(weights: &[f32], rows: usize, n_head: usize) -> Result<Vec<f32>> {
    let (dim, cols) = check(weights.len(), rows, n_head)?;
    let mut out = Vec::with_capacity(weights.len());
    for h in 0..n_head {
        let base = h * 2 * dim;
        for b in 0..2 {
            for a in 0..dim {
                let src = (base + 2 * a + b) * cols;
                out.extend_from_slice(row(weights, src, cols)?);
            }
        }
    }
    Ok(out)
}

/// Row `src / cols` of `weights` (the shape was checked; an error rather than a panic anyway).
fn row(weights: &[f32], src: usize, cols: usize) -> Result<&[f32]> {
    weights.get(src..src + cols).ok_or_else(|| {
        GgufError::InvalidShape(format!(
            "Q/K permutation: row at {src} (+{cols}) outside {} values",
            weights.len()
        ))
    })
}

/// The permutation llama.cpp applies when converting (the inverse of [`reverse_permute`]).
pub fn permute(weights: &[f32], rows: usize, n_head: usize) -> Result<Vec<f32>> {
    let (dim, cols) = check(weights.len(), rows, n_head)?;
    let mut out = Vec::with_capacity(weights.len());
    for h in 0..n_head {
        let base = h * 2 * dim;
        for a in 0..dim {
            for b in 0..2 {
                let src = (base + b * dim + a) * cols;
                out.extend_from_slice(row(weights, src, cols)?);
            }
        }
    }
    Ok(out)
}

/// Applies transformers' llama GGUF tensor processing to a dequantised tensor in place: if `name`
/// contains `.attn_q.` its rows are un-permuted with `n_head` heads; if it contains `.attn_k.`
/// with `n_head_kv` heads; any other tensor is left unchanged. Returns whether it changed.
pub fn unpermute_llama_qk(
    name: &str,
    tensor: &mut F32Tensor,
    n_head: usize,
    n_head_kv: usize,
) -> Result<bool> {
    let heads = if name.contains(".attn_q.") {
        n_head
    } else if name.contains(".attn_k.") {
        n_head_kv
    } else {
        return Ok(false);
    };
    let rows = *tensor
        .shape
        .first()
        .ok_or_else(|| GgufError::InvalidShape(format!("tensor `{name}` is 0-dimensional")))?;
    tensor.data = reverse_permute(&tensor.data, rows, heads)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_permute_matches_numpy_formula() {
        // 2 heads, head dim 4 (dim = 2), 3 columns; value = row * 10 + col.
        let rows = 8;
        let w: Vec<f32> = (0..rows)
            .flat_map(|r| (0..3).map(move |c| (r * 10 + c) as f32))
            .collect();
        let out = reverse_permute(&w, rows, 2).unwrap();
        // numpy: np.arange(8).reshape(2, 2, 2).swapaxes(2, 1).reshape(8) == [0, 2, 1, 3, 4, 6, 5, 7]
        let want_rows = [0, 2, 1, 3, 4, 6, 5, 7];
        let want: Vec<f32> = want_rows
            .iter()
            .flat_map(|r| (0..3).map(move |c| (r * 10 + c) as f32))
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn permute_round_trips() {
        let rows = 24;
        let w: Vec<f32> = (0..rows * 5).map(|i| i as f32).collect();
        for heads in [1, 3, 6, 12] {
            let p = permute(&w, rows, heads).unwrap();
            // With head dim 2 (12 heads) the permutation is the identity.
            assert_eq!(p == w, heads == 12);
            assert_eq!(reverse_permute(&p, rows, heads).unwrap(), w);
        }
        // 1-D (bias) case.
        let b: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(
            reverse_permute(&permute(&b, 12, 3).unwrap(), 12, 3).unwrap(),
            b
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(reverse_permute(&[0.0; 10], 10, 3).is_err());
        assert!(reverse_permute(&[0.0; 12], 0, 3).is_err());
        assert!(reverse_permute(&[0.0; 13], 12, 3).is_err());
    }

    #[test]
    fn unpermute_selects_heads_by_name() {
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mk = || F32Tensor {
            shape: vec![12],
            data: data.clone(),
        };
        let mut q = mk();
        assert!(unpermute_llama_qk("blk.0.attn_q.weight", &mut q, 3, 1).unwrap());
        assert_eq!(q.data, reverse_permute(&data, 12, 3).unwrap());
        let mut k = mk();
        assert!(unpermute_llama_qk("blk.0.attn_k.weight", &mut k, 3, 1).unwrap());
        assert_eq!(k.data, reverse_permute(&data, 12, 1).unwrap());
        let mut v = mk();
        assert!(!unpermute_llama_qk("blk.0.attn_v.weight", &mut v, 3, 1).unwrap());
        assert_eq!(v.data, data);
    }
}
