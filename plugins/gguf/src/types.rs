//! ggml tensor types and their block layouts.

use std::fmt;

/// A ggml tensor element type, as stored in a GGUF tensor info (`ggml_type` enum of ggml).
///
/// Every type ggml defines is listed so block sizes (and hence tensor byte sizes) are known even
/// for types this crate cannot dequantise; ids ggml does not define become [`GgmlType::Unknown`].
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 4-bit symmetric blocks of 32: f16 scale + 16 bytes of nibbles.
    Q4_0,
    /// 4-bit affine blocks of 32: f16 scale, f16 min + 16 bytes of nibbles.
    Q4_1,
    /// 5-bit symmetric blocks of 32.
    Q5_0,
    /// 5-bit affine blocks of 32.
    Q5_1,
    /// 8-bit symmetric blocks of 32: f16 scale + 32 signed bytes.
    Q8_0,
    /// 8-bit blocks of 32 with a sum term.
    Q8_1,
    /// k-quant, 2 bits.
    Q2_K,
    /// k-quant, 3 bits.
    Q3_K,
    /// k-quant, 4 bits.
    Q4_K,
    /// k-quant, 5 bits.
    Q5_K,
    /// k-quant, 6 bits.
    Q6_K,
    /// k-quant, 8 bits.
    Q8_K,
    /// i-quant IQ2_XXS.
    IQ2_XXS,
    /// i-quant IQ2_XS.
    IQ2_XS,
    /// i-quant IQ3_XXS.
    IQ3_XXS,
    /// i-quant IQ1_S.
    IQ1_S,
    /// i-quant IQ4_NL.
    IQ4_NL,
    /// i-quant IQ3_S.
    IQ3_S,
    /// i-quant IQ2_S.
    IQ2_S,
    /// i-quant IQ4_XS.
    IQ4_XS,
    /// 8-bit signed integer.
    I8,
    /// 16-bit signed integer.
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 64-bit IEEE float.
    F64,
    /// i-quant IQ1_M.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// ternary quant TQ1_0.
    TQ1_0,
    /// ternary quant TQ2_0.
    TQ2_0,
    /// MXFP4 (4-bit microscaling float).
    MXFP4,
    /// NVFP4 (4-bit float, blocks of 64).
    NVFP4,
    /// 1-bit quant Q1_0 (blocks of 128).
    Q1_0,
    /// A type id this crate does not know.
    Unknown(u32),
}

impl GgmlType {
    /// Maps a raw ggml type id to a [`GgmlType`].
    pub fn from_id(id: u32) -> Self {
        use GgmlType::*;
        match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            40 => NVFP4,
            41 => Q1_0,
            other => Unknown(other),
        }
    }

    /// The raw ggml type id.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
            NVFP4 => 40,
            Q1_0 => 41,
            Unknown(id) => id,
        }
    }

    /// `(elements per block, bytes per block)`, or `None` for an unknown type.
    ///
    /// Values match `GGML_QUANT_SIZES` of the `gguf` Python package (0.19).
    pub fn block_layout(self) -> Option<(usize, usize)> {
        use GgmlType::*;
        const QK_K: usize = 256;
        Some(match self {
            F32 => (1, 4),
            F16 => (1, 2),
            Q4_0 => (32, 2 + 16),
            Q4_1 => (32, 2 + 2 + 16),
            Q5_0 => (32, 2 + 4 + 16),
            Q5_1 => (32, 2 + 2 + 4 + 16),
            Q8_0 => (32, 2 + 32),
            Q8_1 => (32, 4 + 4 + 32),
            Q2_K => (QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
            Q3_K => (QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
            Q4_K => (QK_K, 2 + 2 + QK_K / 2 + 12),
            Q5_K => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
            Q6_K => (QK_K, 2 + QK_K / 16 + 3 * QK_K / 4),
            Q8_K => (QK_K, 4 + QK_K + QK_K / 8),
            IQ2_XXS => (QK_K, 2 + QK_K / 4),
            IQ2_XS => (QK_K, 2 + QK_K / 4 + QK_K / 32),
            IQ3_XXS => (QK_K, 2 + QK_K / 4 + QK_K / 8),
            IQ1_S => (QK_K, 2 + QK_K / 8 + QK_K / 16),
            IQ4_NL => (32, 2 + 16),
            IQ3_S => (QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
            IQ2_S => (QK_K, 2 + QK_K / 4 + QK_K / 16),
            IQ4_XS => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 => (1, 8),
            F64 => (1, 8),
            IQ1_M => (QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            BF16 => (1, 2),
            TQ1_0 => (QK_K, 2 + 4 * 13),
            TQ2_0 => (QK_K, 2 + 64),
            MXFP4 => (32, 1 + 16),
            NVFP4 => (64, 36),
            Q1_0 => (128, 2 + 16),
            Unknown(_) => return None,
        })
    }

    /// Whether [`crate::dequantize`] supports this type.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q2_K
                | GgmlType::Q3_K
                | GgmlType::Q4_K
                | GgmlType::Q5_K
                | GgmlType::Q6_K
        )
    }

    /// Number of bytes `n_elements` elements occupy, or `None` if the type is unknown or
    /// `n_elements` is not a whole number of blocks.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let (block, size) = self.block_layout()?;
        if !n_elements.is_multiple_of(block as u64) {
            return None;
        }
        (n_elements / block as u64).checked_mul(size as u64)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgmlType::Unknown(id) => write!(f, "unknown ggml type {id}"),
            other => write!(f, "{other:?}"),
        }
    }
}
