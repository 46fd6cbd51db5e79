//! Dequantisation of ggml tensor data to `f32`.
//!
//! Block layouts follow ggml (`ggml-common.h`); arithmetic follows ggml's reference
//! `dequantize_row_*` (`ggml-quants.c`: f16 scales widened to f32, then `q * d` or `q * d + m`
//! in f32), so results are bit-identical to ggml and to the `gguf` Python package. The k-quants
//! (Q2_K … Q6_K) are in [`crate::kquants`].

use half::{bf16, f16};

use crate::error::{GgufError, Result};
use crate::kquants;
use crate::types::GgmlType;

/// Elements per block of the 32-element quantisation types.
pub const QK: usize = 32;

/// Bytes per block: Q8_0 `{ f16 d; i8 qs[32]; }`, Q4_0 `{ f16 d; u8 qs[16]; }`,
/// Q4_1 `{ f16 d; f16 m; u8 qs[16]; }`, Q5_0 `{ f16 d; u8 qh[4]; u8 qs[16]; }`,
/// Q5_1 `{ f16 d; f16 m; u8 qh[4]; u8 qs[16]; }`.
const Q8_0_BLOCK: usize = 2 + QK;
const Q4_0_BLOCK: usize = 2 + QK / 2;
const Q4_1_BLOCK: usize = 4 + QK / 2;
const Q5_0_BLOCK: usize = 2 + 4 + QK / 2;
const Q5_1_BLOCK: usize = 4 + 4 + QK / 2;

/// Dequantises `n_elements` elements of `ggml_type` data in `data` (little-endian, ggml layout)
/// into a new `Vec<f32>`.
///
/// Supported types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K
/// ([`GgmlType::can_dequantize`]). `name` only labels errors: an unsupported
/// type gives [`GgufError::UnsupportedType`], a wrong byte count [`GgufError::SizeMismatch`].
pub fn dequantize(
    name: &str,
    ggml_type: GgmlType,
    data: &[u8],
    n_elements: usize,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n_elements];
    dequantize_into(name, ggml_type, data, &mut out)?;
    Ok(out)
}

/// Like [`dequantize`], writing into `out` (whose length is the element count).
pub fn dequantize_into(
    name: &str,
    ggml_type: GgmlType,
    data: &[u8],
    out: &mut [f32],
) -> Result<()> {
    if !ggml_type.can_dequantize() {
        return Err(GgufError::UnsupportedType {
            tensor: name.to_owned(),
            ggml_type,
        });
    }
    let n = out.len();
    let expected = ggml_type
        .bytes_for(n as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            GgufError::InvalidShape(format!(
                "tensor `{name}`: {n} elements is not a whole number of {ggml_type} blocks"
            ))
        })?;
    if data.len() != expected {
        return Err(GgufError::SizeMismatch {
            tensor: name.to_owned(),
            ggml_type,
            expected,
            actual: data.len(),
        });
    }
    // The byte count was checked above; blocks are taken as fixed-size arrays, so no index
    // into file bytes can panic.
    let (blocks, _) = out.as_chunks_mut::<QK>();
    match ggml_type {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(data.as_chunks::<4>().0) {
                *o = f32::from_le_bytes(*c);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(data.as_chunks::<2>().0) {
                *o = f16::from_le_bytes(*c).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(data.as_chunks::<2>().0) {
                *o = bf16::from_le_bytes(*c).to_f32();
            }
        }
        GgmlType::Q8_0 => {
            for (o, [d0, d1, qs @ ..]) in blocks.iter_mut().zip(data.as_chunks::<Q8_0_BLOCK>().0) {
                let d = f16::from_le_bytes([*d0, *d1]).to_f32();
                for (y, &q) in o.iter_mut().zip(qs) {
                    *y = (q as i8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_0 => {
            // Element j = low nibble of qs[j], element j + 16 = high nibble; value (q - 8) * d.
            for (o, [d0, d1, qs @ ..]) in blocks.iter_mut().zip(data.as_chunks::<Q4_0_BLOCK>().0) {
                let d = f16::from_le_bytes([*d0, *d1]).to_f32();
                let (lo, hi) = o.as_chunks_mut::<{ QK / 2 }>().0.split_at_mut(1);
                let halves = lo.iter_mut().flatten().zip(hi.iter_mut().flatten());
                for ((l, h), &q) in halves.zip(qs) {
                    *l = ((q & 0x0f) as i32 - 8) as f32 * d;
                    *h = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            // Value q * d + m.
            for (o, [d0, d1, m0, m1, qs @ ..]) in
                blocks.iter_mut().zip(data.as_chunks::<Q4_1_BLOCK>().0)
            {
                let d = f16::from_le_bytes([*d0, *d1]).to_f32();
                let m = f16::from_le_bytes([*m0, *m1]).to_f32();
                let (lo, hi) = o.as_chunks_mut::<{ QK / 2 }>().0.split_at_mut(1);
                let halves = lo.iter_mut().flatten().zip(hi.iter_mut().flatten());
                for ((l, h), &q) in halves.zip(qs) {
                    *l = (q & 0x0f) as f32 * d + m;
                    *h = (q >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q5_0 => {
            // `dequantize_row_q5_0`: bit j of `qh` is the fifth bit of element j (low nibble of
            // qs[j]), bit j + 16 that of element j + 16 (high nibble); value (q - 16) * d.
            for (o, [d0, d1, h0, h1, h2, h3, qs @ ..]) in
                blocks.iter_mut().zip(data.as_chunks::<Q5_0_BLOCK>().0)
            {
                let d = f16::from_le_bytes([*d0, *d1]).to_f32();
                let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
                let (lo, hi) = o.as_chunks_mut::<{ QK / 2 }>().0.split_at_mut(1);
                let halves = lo.iter_mut().flatten().zip(hi.iter_mut().flatten());
                for (j, ((l, h), &q)) in halves.zip(qs).enumerate() {
                    let xh_0 = ((qh >> j) << 4) & 0x10;
                    let xh_1 = (qh >> (j + 12)) & 0x10;
                    let x0 = ((u32::from(q) & 0x0f) | xh_0) as i32 - 16;
                    let x1 = ((u32::from(q) >> 4) | xh_1) as i32 - 16;
                    *l = x0 as f32 * d;
                    *h = x1 as f32 * d;
                }
            }
        }
        GgmlType::Q5_1 => {
            // `dequantize_row_q5_1`: as Q5_0 without the offset; value q * d + m.
            for (o, [d0, d1, m0, m1, h0, h1, h2, h3, qs @ ..]) in
                blocks.iter_mut().zip(data.as_chunks::<Q5_1_BLOCK>().0)
            {
                let d = f16::from_le_bytes([*d0, *d1]).to_f32();
                let m = f16::from_le_bytes([*m0, *m1]).to_f32();
                let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
                let (lo, hi) = o.as_chunks_mut::<{ QK / 2 }>().0.split_at_mut(1);
                let halves = lo.iter_mut().flatten().zip(hi.iter_mut().flatten());
                for (j, ((l, h), &q)) in halves.zip(qs).enumerate() {
                    let xh_0 = ((qh >> j) << 4) & 0x10;
                    let xh_1 = (qh >> (j + 12)) & 0x10;
                    let x0 = (u32::from(q) & 0x0f) | xh_0;
                    let x1 = (u32::from(q) >> 4) | xh_1;
                    *l = x0 as f32 * d + m;
                    *h = x1 as f32 * d + m;
                }
            }
        }
        GgmlType::Q2_K => kquants::dequantize_q2_k(data, out),
        GgmlType::Q3_K => kquants::dequantize_q3_k(data, out),
        GgmlType::Q4_K => kquants::dequantize_q4_k(data, out),
        GgmlType::Q5_K => kquants::dequantize_q5_k(data, out),
        GgmlType::Q6_K => kquants::dequantize_q6_k(data, out),
        _ => unreachable!("checked by can_dequantize"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn q8_0_block() {
        let mut block = f16b(0.5).to_vec();
        let qs: Vec<i8> = (0..32).map(|i| (i as i8) * 4 - 64).collect();
        block.extend(qs.iter().map(|&q| q as u8));
        let got = dequantize("t", GgmlType::Q8_0, &block, 32).unwrap();
        let want: Vec<f32> = qs.iter().map(|&q| q as f32 * 0.5).collect();
        assert_eq!(got, want);
        assert_eq!(got[0], -32.0);
        assert_eq!(got[31], 30.0);
    }

    #[test]
    fn q4_0_block_nibble_order() {
        // Element j (j < 16) is the low nibble of byte j; element j + 16 the high nibble.
        let q: Vec<u8> = (0..32).map(|i| (i * 7 % 16) as u8).collect();
        let mut block = f16b(0.25).to_vec();
        block.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        assert_eq!(block.len(), 18);
        let got = dequantize("t", GgmlType::Q4_0, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| (v as f32 - 8.0) * 0.25).collect();
        assert_eq!(got, want);
        assert_eq!(got[1], (7.0 - 8.0) * 0.25);
        assert_eq!(got[17], ((17 * 7 % 16) as f32 - 8.0) * 0.25);
    }

    #[test]
    fn q4_1_block_two_blocks() {
        let mut data = Vec::new();
        let mut want = Vec::new();
        for (d, m) in [(0.5f32, -1.0f32), (2.0, 3.0)] {
            let q: Vec<u8> = (0..32).map(|i| ((i * 5 + 3) % 16) as u8).collect();
            data.extend(f16b(d));
            data.extend(f16b(m));
            data.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
            want.extend(q.iter().map(|&v| v as f32 * d + m));
        }
        let got = dequantize("t", GgmlType::Q4_1, &data, 64).unwrap();
        assert_eq!(got, want);
        assert_eq!(got[0], 3.0 * 0.5 - 1.0);
        assert_eq!(got[32], 3.0 * 2.0 + 3.0);
    }

    #[test]
    fn q5_0_and_q5_1_high_bits() {
        // Element j: low nibble of qs[j] | bit j of qh << 4; element j + 16: high nibble of
        // qs[j] | bit j + 16 of qh << 4.
        let q: Vec<u8> = (0..32).map(|i| ((i * 11 + 5) % 32) as u8).collect();
        let qh: u32 = q
            .iter()
            .enumerate()
            .map(|(i, &v)| u32::from(v >> 4) << i)
            .sum();
        let qs = (0..16).map(|j| (q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
        let mut block = f16b(0.5).to_vec();
        block.extend(qh.to_le_bytes());
        block.extend(qs.clone());
        assert_eq!(block.len(), Q5_0_BLOCK);
        let got = dequantize("t", GgmlType::Q5_0, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| (v as f32 - 16.0) * 0.5).collect();
        assert_eq!(got, want);

        let mut block = f16b(0.25).to_vec();
        block.extend(f16b(-3.0));
        block.extend(qh.to_le_bytes());
        block.extend(qs);
        assert_eq!(block.len(), Q5_1_BLOCK);
        let got = dequantize("t", GgmlType::Q5_1, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| v as f32 * 0.25 - 3.0).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn f16_and_bf16_and_f32() {
        let vals = [0.0f32, 1.0, -2.5, 65504.0, 0.000_061_035_156];
        let data: Vec<u8> = vals.iter().flat_map(|&v| f16b(v)).collect();
        assert_eq!(dequantize("t", GgmlType::F16, &data, 5).unwrap(), vals);
        let data: Vec<u8> = vals
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let got = dequantize("t", GgmlType::BF16, &data, 5).unwrap();
        assert_eq!(&got[..3], &vals[..3]);
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(dequantize("t", GgmlType::F32, &data, 5).unwrap(), vals);
    }

    #[test]
    fn unsupported_and_size_errors() {
        let err = dequantize("blk.0.x", GgmlType::IQ2_XXS, &[0; 66], 256).unwrap_err();
        assert!(matches!(
            err,
            GgufError::UnsupportedType { ref tensor, ggml_type: GgmlType::IQ2_XXS } if tensor == "blk.0.x"
        ));
        let msg = err.to_string();
        assert!(msg.contains("blk.0.x") && msg.contains("IQ2_XXS"), "{msg}");

        let err = dequantize("t", GgmlType::Q8_0, &[0; 33], 32).unwrap_err();
        assert!(matches!(
            err,
            GgufError::SizeMismatch {
                expected: 34,
                actual: 33,
                ..
            }
        ));
        let err = dequantize("t", GgmlType::Q4_0, &[0; 18], 31).unwrap_err();
        assert!(matches!(err, GgufError::InvalidShape(_)));
    }
}
