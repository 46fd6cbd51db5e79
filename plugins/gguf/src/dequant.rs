//! Dequantisation of ggml tensor data to `f32`.
//!
//! Block layouts follow ggml (`ggml-common.h`); arithmetic follows ggml's reference
//! `dequantize_row_*` (f16 scales widened to f32, then `q * d` or `q * d + m` in f32),
//! so results are bit-identical to ggml and to the `gguf` Python package.

use half::{bf16, f16};

use crate::error::{GgufError, Result};
use crate::types::GgmlType;

/// Elements per block of the 32-element quantisation types.
pub const QK: usize = 32;

/// Bytes per block: Q8_0 `{ f16 d; i8 qs[32]; }`, Q4_0 `{ f16 d; u8 qs[16]; }`,
/// Q4_1 `{ f16 d; f16 m; u8 qs[16]; }`.
const Q8_0_BLOCK: usize = 2 + QK;
const Q4_0_BLOCK: usize = 2 + QK / 2;
const Q4_1_BLOCK: usize = 4 + QK / 2;

/// Dequantises `n_elements` elements of `ggml_type` data in `data` (little-endian, ggml layout)
/// into a new `Vec<f32>`.
///
/// Supported types: F32, F16, BF16, Q8_0, Q4_0, Q4_1. `name` only labels errors: an unsupported
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
        let err = dequantize("blk.0.x", GgmlType::Q4_K, &[0; 144], 256).unwrap_err();
        assert!(matches!(
            err,
            GgufError::UnsupportedType { ref tensor, ggml_type: GgmlType::Q4_K } if tensor == "blk.0.x"
        ));
        let msg = err.to_string();
        assert!(msg.contains("blk.0.x") && msg.contains("Q4_K"), "{msg}");

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
