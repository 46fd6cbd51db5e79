//! Q5_0, Q5_1 and the k-quants Q2_K … Q6_K against the `gguf` Python package (llama.cpp's
//! gguf-py 0.19.0, whose `dequantize` the script also checks against a scalar transcription of
//! ggml's `dequantize_row_*`): `fixtures/golden/gguf_kquants.{safetensors,json}`, made by
//! `tools/golden_gguf_kquants.py`. Every value must match bit for bit (signed zeros included).
//! Needs no assets.

use cleft_gguf::{GgmlType, GgufError, QK, QK_K, dequantize, dequantize_into};
use cleft_testing::{Golden, golden_dir};
use serde_json::Value;

const TYPES: [GgmlType; 7] = [
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn meta() -> Value {
    let path = golden_dir().join("gguf_kquants.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

/// Raw block bytes `<type>.<kind>.bytes` (U8 `[n_blocks, type_size]`).
fn golden_bytes(golden: &Golden, name: &str) -> (Vec<usize>, Vec<u8>) {
    let (shape, values) = golden.int_values(name);
    let bytes = values
        .into_iter()
        .map(|v| u8::try_from(v).expect("a byte"))
        .collect();
    (shape, bytes)
}

#[test]
fn golden_blocks_dequantise_bit_for_bit() {
    let golden = Golden::open("gguf_kquants");
    let meta = meta();
    let n_blocks = meta["n_blocks"].as_u64().unwrap() as usize;
    let mut checked = Vec::new();
    for ty in TYPES {
        let entry = &meta["types"][ty.to_string()];
        assert_eq!(entry["ggml_type_id"].as_u64(), Some(u64::from(ty.id())));
        let (block, size) = ty.block_layout().unwrap();
        assert_eq!(entry["block_size"].as_u64(), Some(block as u64), "{ty}");
        assert_eq!(entry["type_size"].as_u64(), Some(size as u64), "{ty}");
        assert_eq!(block, if ty.id() < 10 { QK } else { QK_K });
        assert!(ty.can_dequantize(), "{ty}");

        let kinds = entry["kinds"].as_object().unwrap();
        let has_quantizer = entry["has_gguf_quantizer"].as_bool().unwrap();
        assert_eq!(kinds.contains_key("quantized"), has_quantizer, "{ty}");
        assert!(
            kinds.contains_key("random") && kinds.contains_key("edge"),
            "{ty}"
        );
        for kind in kinds.keys() {
            let key = format!("{ty}.{kind}");
            let (shape, bytes) = golden_bytes(&golden, &format!("{key}.bytes"));
            assert_eq!(shape, [n_blocks, size], "{key}");
            let want = golden.tensor(&format!("{key}.values"));
            assert_eq!(want.shape, [n_blocks * block], "{key}");

            let got = dequantize(&key, ty, &bytes, want.data.len()).unwrap();
            let mismatches: Vec<String> = got
                .iter()
                .zip(&want.data)
                .enumerate()
                .filter(|(_, (g, w))| g.to_bits() != w.to_bits())
                .map(|(i, (g, w))| {
                    format!(
                        "[{i}] got {g:e} ({:#010x}) want {w:e} ({:#010x})",
                        g.to_bits(),
                        w.to_bits()
                    )
                })
                .collect();
            assert!(
                mismatches.is_empty(),
                "{key}: {} of {} values differ: {:?}",
                mismatches.len(),
                got.len(),
                &mismatches[..mismatches.len().min(8)]
            );

            // The in-place entry point gives the same bits (over a dirty buffer).
            let mut out = vec![f32::NAN; want.data.len()];
            dequantize_into(&key, ty, &bytes, &mut out).unwrap();
            assert!(
                out.iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{key}: dequantize_into differs"
            );
            checked.push(key);
        }
    }
    // Q5_0 and Q5_1 have gguf's quantiser (three kinds), the k-quants do not (two).
    assert_eq!(checked.len(), 2 * 3 + 5 * 2, "{checked:?}");
}

#[test]
fn partial_blocks_are_size_errors() {
    for ty in TYPES {
        let (block, size) = ty.block_layout().unwrap();
        // Two blocks of elements, with a byte count that is not two whole blocks.
        for len in [
            0,
            1,
            size - 1,
            size + 1,
            2 * size - 1,
            2 * size + 1,
            3 * size,
        ] {
            let err =
                dequantize("blk.3.ffn_down.weight", ty, &vec![0u8; len], 2 * block).unwrap_err();
            match &err {
                GgufError::SizeMismatch {
                    tensor,
                    ggml_type,
                    expected,
                    actual,
                } => {
                    assert_eq!(tensor, "blk.3.ffn_down.weight");
                    assert_eq!(*ggml_type, ty);
                    assert_eq!((*expected, *actual), (2 * size, len), "{ty}");
                }
                other => panic!("{ty}, {len} bytes: unexpected {other:?}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains("blk.3.ffn_down.weight") && msg.contains(&ty.to_string()),
                "{msg}"
            );
        }
        // An element count that is not a whole number of blocks.
        for n in [1, block - 1, block + 1] {
            assert!(
                matches!(
                    dequantize("t", ty, &vec![0u8; size], n),
                    Err(GgufError::InvalidShape(_))
                ),
                "{ty}: {n} elements"
            );
        }
        assert_eq!(dequantize("t", ty, &[], 0).unwrap(), Vec::<f32>::new());
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Any bytes (NaN / infinite f16 scales included) dequantise to some value without panicking.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for ty in TYPES {
        let (block, size) = ty.block_layout().unwrap();
        let data: Vec<u8> = (0..8 * size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert_eq!(
            dequantize("t", ty, &data, 8 * block).unwrap().len(),
            8 * block
        );
        let ones = vec![0xffu8; size];
        let all_nan = dequantize("t", ty, &ones, block).unwrap();
        assert!(
            all_nan.iter().all(|v| v.is_nan()),
            "{ty}: 0xFFFF scale is NaN"
        );
    }
}
