//! A tiny GGUF written by hand: every metadata value type, a custom alignment, one tensor per
//! supported type with hand-quantised blocks, and unsupported/unknown types. Needs no assets.

use cleft_gguf::{GgmlType, GgufError, GgufFile, MetadataValue, ValueType, dequantize};
use half::f16;

/// A minimal GGUF v3 writer.
#[derive(Default)]
struct Writer {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
    alignment: usize,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s.as_bytes());
}

impl Writer {
    fn new(alignment: usize) -> Self {
        Writer {
            alignment,
            ..Default::default()
        }
    }
    /// Adds a metadata entry whose value (after the type tag) is already encoded.
    fn kv(&mut self, key: &str, ty: u32, value: &[u8]) {
        put_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: &[u8]) {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        put_str(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.n_tensors += 1;
    }
    fn finish(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

fn f16b(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// Packs 32 4-bit values the ggml way: byte j = q[j] | q[j + 16] << 4.
fn nibbles(q: &[u8; 32]) -> Vec<u8> {
    (0..16).map(|j| q[j] | (q[j + 16] << 4)).collect()
}

struct Expected {
    q8: Vec<f32>,
    q4_0: Vec<f32>,
    q4_1: Vec<f32>,
}

fn build(alignment: Option<u32>) -> (Vec<u8>, Expected) {
    let align = alignment.unwrap_or(32) as usize;
    let mut w = Writer::new(align);
    w.kv("general.architecture", 8, &{
        let mut b = Vec::new();
        put_str(&mut b, "llama");
        b
    });
    if let Some(a) = alignment {
        w.kv("general.alignment", 4, &a.to_le_bytes());
    }
    w.kv("t.u8", 0, &[200]);
    w.kv("t.i8", 1, &(-5i8).to_le_bytes());
    w.kv("t.u16", 2, &60000u16.to_le_bytes());
    w.kv("t.i16", 3, &(-300i16).to_le_bytes());
    w.kv("t.u32", 4, &4_000_000_000u32.to_le_bytes());
    w.kv("t.i32", 5, &(-7i32).to_le_bytes());
    w.kv("t.f32", 6, &1.5f32.to_le_bytes());
    w.kv("t.bool", 7, &[1]);
    w.kv("t.u64", 10, &u64::MAX.to_le_bytes());
    w.kv("t.i64", 11, &i64::MIN.to_le_bytes());
    w.kv("t.f64", 12, &(-2.25f64).to_le_bytes());
    // Array of i32.
    let mut arr = 5u32.to_le_bytes().to_vec();
    arr.extend(3u64.to_le_bytes());
    for v in [1i32, -2, 3] {
        arr.extend(v.to_le_bytes());
    }
    w.kv("t.arr_i32", 9, &arr);
    // Array of strings.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend(2u64.to_le_bytes());
    put_str(&mut arr, "a b");
    put_str(&mut arr, "héllo");
    w.kv("t.arr_str", 9, &arr);
    // Array of arrays of u8, and an empty array of f64.
    let mut arr = 9u32.to_le_bytes().to_vec();
    arr.extend(2u64.to_le_bytes());
    for inner in [&[1u8, 2][..], &[][..]] {
        arr.extend(0u32.to_le_bytes());
        arr.extend((inner.len() as u64).to_le_bytes());
        arr.extend(inner);
    }
    w.kv("t.arr_arr", 9, &arr);
    let mut arr = 12u32.to_le_bytes().to_vec();
    arr.extend(0u64.to_le_bytes());
    w.kv("t.arr_empty", 9, &arr);

    // F32 [2 rows x 3 cols] stored as ggml dims [3, 2].
    let f32_vals = [1.0f32, -2.0, 3.5, 0.25, 8.0, -0.125];
    w.tensor(
        "f32",
        &[3, 2],
        0,
        &f32_vals
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    // F16 [4].
    let f16_vals = [0.5f32, -1.0, 2048.0, 0.0];
    w.tensor(
        "f16",
        &[4],
        1,
        &f16_vals.iter().flat_map(|&v| f16b(v)).collect::<Vec<_>>(),
    );
    // Q8_0, one block.
    let mut q8 = f16b(0.125).to_vec();
    let qs: Vec<i8> = (0..32).map(|i| (i as i8 - 16) * 7).collect();
    q8.extend(qs.iter().map(|&q| q as u8));
    let q8_want: Vec<f32> = qs.iter().map(|&q| q as f32 * 0.125).collect();
    w.tensor("q8_0", &[32], 8, &q8);
    // Q4_0, two rows of one block: dims [32, 2].
    let mut q4_0 = Vec::new();
    let mut q4_0_want = Vec::new();
    for (row, d) in [(0u8, 1.0f32), (1, -0.5)] {
        let q: [u8; 32] = std::array::from_fn(|i| ((i as u8) + row * 3) % 16);
        q4_0.extend(f16b(d));
        q4_0.extend(nibbles(&q));
        q4_0_want.extend(q.iter().map(|&v| (v as f32 - 8.0) * d));
    }
    w.tensor("q4_0", &[32, 2], 2, &q4_0);
    // Q4_1, two blocks in one row: dims [64].
    let mut q4_1 = Vec::new();
    let mut q4_1_want = Vec::new();
    for (blk, d, m) in [(0u8, 0.25f32, -2.0f32), (1, 1.5, 0.5)] {
        let q: [u8; 32] = std::array::from_fn(|i| 15 - (i as u8 + blk) % 16);
        q4_1.extend(f16b(d));
        q4_1.extend(f16b(m));
        q4_1.extend(nibbles(&q));
        q4_1_want.extend(q.iter().map(|&v| v as f32 * d + m));
    }
    w.tensor("q4_1", &[64], 3, &q4_1);
    // Unsupported: IQ2_XXS (one 66-byte block of 256), and an unknown type id.
    // The unknown one comes first: the last tensor (validated) is the one truncation cuts.
    w.tensor("mystery", &[4], 99, &[0u8; 4]);
    w.tensor("iq2_xxs", &[256], 16, &[0u8; 66]);
    (
        w.finish(),
        Expected {
            q8: q8_want,
            q4_0: q4_0_want,
            q4_1: q4_1_want,
        },
    )
}

#[test]
fn parses_every_metadata_type() {
    let (bytes, _) = build(None);
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata().len(), 16);
    assert_eq!(f.metadata()[0].0, "general.architecture");
    assert_eq!(f.get("t.u8"), Some(&MetadataValue::U8(200)));
    assert_eq!(f.get("t.i8"), Some(&MetadataValue::I8(-5)));
    assert_eq!(f.get("t.u16"), Some(&MetadataValue::U16(60000)));
    assert_eq!(f.get("t.i16"), Some(&MetadataValue::I16(-300)));
    assert_eq!(f.get_u64("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get("t.i32").unwrap().as_i64(), Some(-7));
    assert_eq!(f.get("t.i32").unwrap().as_u64(), None);
    assert_eq!(f.get_f64("t.f32").unwrap(), 1.5);
    assert!(f.get_bool("t.bool").unwrap());
    assert_eq!(f.get_u64("t.u64").unwrap(), u64::MAX);
    assert_eq!(f.get("t.i64"), Some(&MetadataValue::I64(i64::MIN)));
    assert_eq!(f.get_f64("t.f64").unwrap(), -2.25);
    let ints: Vec<i64> = f
        .get_array("t.arr_i32")
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ints, [1, -2, 3]);
    let strs: Vec<&str> = f
        .get_array("t.arr_str")
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(strs, ["a b", "héllo"]);
    let nested = f.get("t.arr_arr").unwrap();
    assert_eq!(
        nested,
        &MetadataValue::Array {
            item_type: ValueType::Array,
            items: vec![
                MetadataValue::Array {
                    item_type: ValueType::U8,
                    items: vec![MetadataValue::U8(1), MetadataValue::U8(2)]
                },
                MetadataValue::Array {
                    item_type: ValueType::U8,
                    items: vec![]
                },
            ],
        }
    );
    assert_eq!(
        f.get("t.arr_empty"),
        Some(&MetadataValue::Array {
            item_type: ValueType::F64,
            items: vec![]
        })
    );
    assert!(matches!(
        f.get_str("t.u8"),
        Err(GgufError::WrongType {
            found: ValueType::U8,
            ..
        })
    ));
}

#[test]
fn alignment_and_data_offset() {
    for alignment in [None, Some(64), Some(256)] {
        let (bytes, _) = build(alignment);
        let f = GgufFile::from_bytes(bytes).unwrap();
        let a = alignment.unwrap_or(32) as u64;
        assert_eq!(f.alignment(), a);
        assert_eq!(f.data_offset() % a, 0);
        for t in f.tensors() {
            assert_eq!(t.offset() % a, 0, "{}", t.name());
        }
        assert_eq!(f.read_f32("q4_1").unwrap().data.len(), 64);
    }
}

#[test]
fn dequantises_each_type_and_reports_shapes() {
    let (bytes, want) = build(Some(64));
    let f = GgufFile::from_bytes(bytes).unwrap();
    let t = f.read_f32("f32").unwrap();
    assert_eq!(f.tensor("f32").unwrap().ggml_dims(), &[3, 2]);
    assert_eq!(t.shape, vec![2, 3]);
    assert_eq!(t.data, [1.0, -2.0, 3.5, 0.25, 8.0, -0.125]);
    assert_eq!(f.read_f32("f16").unwrap().data, [0.5, -1.0, 2048.0, 0.0]);
    assert_eq!(f.read_f32("q8_0").unwrap().data, want.q8);
    let q4_0 = f.read_f32("q4_0").unwrap();
    assert_eq!(q4_0.shape, vec![2, 32]);
    assert_eq!(q4_0.data, want.q4_0);
    assert_eq!(f.read_f32("q4_1").unwrap().data, want.q4_1);
    assert_eq!(f.tensor("q4_1").unwrap().n_bytes(), Some(40));
    // Raw bytes round-trip through the free function too.
    let raw = f.tensor_bytes("q4_0").unwrap();
    assert_eq!(
        dequantize("q4_0", GgmlType::Q4_0, &raw, 64).unwrap(),
        want.q4_0
    );
    assert_eq!(f.parameter_count(), 6 + 4 + 32 + 64 + 64 + 256 + 4);
}

#[test]
fn unsupported_types_are_typed_errors() {
    let (bytes, _) = build(None);
    let f = GgufFile::from_bytes(bytes).unwrap();
    let err = f.read_f32("iq2_xxs").unwrap_err();
    match &err {
        GgufError::UnsupportedType { tensor, ggml_type } => {
            assert_eq!(tensor, "iq2_xxs");
            assert_eq!(*ggml_type, GgmlType::IQ2_XXS);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("iq2_xxs") && err.to_string().contains("IQ2_XXS"));
    assert_eq!(f.tensor_bytes("iq2_xxs").unwrap().len(), 66);

    let t = f.tensor("mystery").unwrap();
    assert_eq!(t.ggml_type(), GgmlType::Unknown(99));
    assert!(matches!(
        f.read_f32("mystery"),
        Err(GgufError::UnsupportedType {
            ggml_type: GgmlType::Unknown(99),
            ..
        })
    ));
    assert!(matches!(
        f.tensor_bytes("mystery"),
        Err(GgufError::UnsupportedType { .. })
    ));
    assert!(matches!(
        f.read_f32("nope"),
        Err(GgufError::MissingTensor(_))
    ));
}

#[test]
fn malformed_files_are_rejected() {
    let (bytes, _) = build(None);
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(matches!(
        GgufFile::from_bytes(bad),
        Err(GgufError::BadMagic(_))
    ));
    let mut v1 = bytes.clone();
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes(v1),
        Err(GgufError::UnsupportedVersion(1))
    ));
    // Truncated inside the metadata, and inside the tensor data.
    assert!(matches!(
        GgufFile::from_bytes(bytes[..100].to_vec()),
        Err(GgufError::Malformed(_))
    ));
    assert!(matches!(
        GgufFile::from_bytes(bytes[..bytes.len() - 1].to_vec()),
        Err(GgufError::Malformed(_))
    ));
    // Absurd tensor count.
    let mut huge = bytes.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes(huge),
        Err(GgufError::Malformed(_))
    ));
    assert!(GgufFile::from_bytes(Vec::new()).is_err());
}

#[test]
fn block_layouts_match_ggml() {
    // GGML_QUANT_SIZES from gguf-py 0.19.
    let table: &[(u32, usize, usize)] = &[
        (0, 1, 4),
        (1, 1, 2),
        (2, 32, 18),
        (3, 32, 20),
        (6, 32, 22),
        (7, 32, 24),
        (8, 32, 34),
        (9, 32, 40),
        (10, 256, 84),
        (11, 256, 110),
        (12, 256, 144),
        (13, 256, 176),
        (14, 256, 210),
        (15, 256, 292),
        (16, 256, 66),
        (17, 256, 74),
        (18, 256, 98),
        (19, 256, 50),
        (20, 32, 18),
        (21, 256, 110),
        (22, 256, 82),
        (23, 256, 136),
        (24, 1, 1),
        (25, 1, 2),
        (26, 1, 4),
        (27, 1, 8),
        (28, 1, 8),
        (29, 256, 56),
        (30, 1, 2),
        (34, 256, 54),
        (35, 256, 66),
        (39, 32, 17),
        (40, 64, 36),
        (41, 128, 18),
    ];
    for &(id, block, size) in table {
        let ty = GgmlType::from_id(id);
        assert_eq!(ty.id(), id);
        assert_eq!(ty.block_layout(), Some((block, size)), "{ty}");
    }
    assert_eq!(GgmlType::from_id(4), GgmlType::Unknown(4));
    assert_eq!(GgmlType::Unknown(4).block_layout(), None);
}
