//! Dequantisation of ggml's k-quants (super-blocks of [`QK_K`] = 256 elements): Q2_K, Q3_K,
//! Q4_K, Q5_K and Q6_K.
//!
//! Block layouts follow ggml (`ggml-common.h`, `block_q2_K` … `block_q6_K`); arithmetic follows
//! ggml's reference `dequantize_row_q{2,3,4,5,6}_K` (`ggml-quants.c`): f16 super-block scales
//! widened to f32, integer sub-block scales and quants converted to f32, then the same f32
//! products and differences in the same order (`d * sc`, `dmin * m`, then `dl * q - ml`; Q6_K
//! `d * sc * q` left to right). Every product is exact in f32 (an 11-bit f16 significand times
//! integers of at most 13 bits), so the only rounding is the final `- ml` (Q2_K, Q4_K, Q5_K):
//! results are bit-identical to ggml whether or not its compiler fuses `a * b - c`, and to the
//! `gguf` Python package (llama.cpp's gguf-py), which the golden test `tests/kquants.rs` checks
//! for every type.
//!
//! Every block is a fixed-size array; its fields are copied out at offsets checked at compile
//! time ([`field`]) and walked with iterators, so no byte of a file is indexed unchecked.

use half::f16;

/// Elements per k-quant super-block (`QK_K` of ggml).
pub const QK_K: usize = 256;

/// `block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin; }`.
pub(crate) const Q2_K_BLOCK: usize = QK_K / 16 + QK_K / 4 + 4;
/// `block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }`.
pub(crate) const Q3_K_BLOCK: usize = QK_K / 8 + QK_K / 4 + 12 + 2;
/// `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }`.
pub(crate) const Q4_K_BLOCK: usize = 4 + 12 + QK_K / 2;
/// `block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }`.
pub(crate) const Q5_K_BLOCK: usize = 4 + 12 + QK_K / 8 + QK_K / 2;
/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }`.
pub(crate) const Q6_K_BLOCK: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

/// The `N` bytes at offset `AT` of a `B`-byte block (the bounds are checked at compile time).
fn field<const AT: usize, const N: usize, const B: usize>(block: &[u8; B]) -> [u8; N] {
    const { assert!(AT + N <= B) };
    let mut out = [0u8; N];
    for (o, &b) in out.iter_mut().zip(block.iter().skip(AT)) {
        *o = b;
    }
    out
}

/// The little-endian f16 at offset `AT` of a block, widened to f32 (`GGML_FP16_TO_FP32`).
fn f16_at<const AT: usize, const B: usize>(block: &[u8; B]) -> f32 {
    f16::from_le_bytes(field::<AT, 2, B>(block)).to_f32()
}

/// Pairs the output super-blocks with the data blocks (the caller checked both counts).
fn blocks<'a, const B: usize>(
    data: &'a [u8],
    out: &'a mut [f32],
) -> impl Iterator<Item = (&'a mut [f32; QK_K], &'a [u8; B])> {
    out.as_chunks_mut::<QK_K>()
        .0
        .iter_mut()
        .zip(data.as_chunks::<B>().0)
}

/// `dequantize_row_q2_K`: 16 sub-blocks of 16, 2-bit quants, 4-bit scale and min per sub-block;
/// `y = (d * (sc & 0xF)) * q - dmin * (sc >> 4)`.
pub(crate) fn dequantize_q2_k(data: &[u8], out: &mut [f32]) {
    for (y, b) in blocks::<Q2_K_BLOCK>(data, out) {
        let scales: [u8; 16] = field::<0, 16, _>(b);
        let qs: [u8; 64] = field::<16, 64, _>(b);
        let d = f16_at::<80, _>(b);
        let min = f16_at::<82, _>(b);
        // Each half of 128 outputs reads 32 bytes of `qs` and 8 scales. Run `2j + h` of 16
        // outputs (j = 0..4, h = 0..2) is bits 2j..2j+2 of `q[16h..16h + 16]` with scale
        // `sc[2j + h]`.
        for ((y, q), sc) in y
            .as_chunks_mut::<128>()
            .0
            .iter_mut()
            .zip(qs.as_chunks::<32>().0)
            .zip(scales.as_chunks::<8>().0)
        {
            let runs = y.as_chunks_mut::<16>().0.iter_mut().zip(sc);
            for (jh, ((y, &sc), q)) in runs.zip(q.as_chunks::<16>().0.iter().cycle()).enumerate() {
                let shift = 2 * (jh / 2);
                let dl = d * f32::from(sc & 0xF);
                let ml = min * f32::from(sc >> 4);
                for (y, &q) in y.iter_mut().zip(q) {
                    *y = dl * f32::from((q >> shift) & 3) - ml;
                }
            }
        }
    }
}

/// The 16 six-bit scales of a Q3_K block, unpacked exactly as `dequantize_row_q3_K` does
/// (`kmask1`/`kmask2` over the 12 bytes read as three little-endian `u32`s): scale `s` has low
/// bits `scales[s] & 0xF` (s < 8) or `scales[s - 8] >> 4`, high bits
/// `(scales[8 + s % 4] >> (2 (s / 4))) & 3`.
fn q3_k_scales(raw: [u8; 12]) -> [u8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes(field::<0, 4, _>(&raw));
    let a1 = u32::from_le_bytes(field::<4, 4, _>(&raw));
    let tmp = u32::from_le_bytes(field::<8, 4, _>(&raw));
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(aux.iter().flat_map(|a| a.to_le_bytes())) {
        *o = b;
    }
    out
}

/// `dequantize_row_q3_K`: 16 sub-blocks of 16, 2 low bits in `qs` plus a high bit in `hmask`
/// (set: +0, clear: −4), 6-bit scales offset by 32; `y = (d * (sc - 32)) * q`.
pub(crate) fn dequantize_q3_k(data: &[u8], out: &mut [f32]) {
    for (y, b) in blocks::<Q3_K_BLOCK>(data, out) {
        let hmask: [u8; 32] = field::<0, 32, _>(b);
        let qs: [u8; 64] = field::<32, 64, _>(b);
        let scales = q3_k_scales(field::<96, 12, _>(b));
        let d_all = f16_at::<108, _>(b);
        let hm = hmask.as_chunks::<16>().0;
        // Half n of 128 outputs reads `qs[32n..32n + 32]` and scales `8n..8n + 8`; run `2j + h`
        // of 16 is bits 2j..2j+2 of `q[16h..]`, high bit `1 << (4n + j)` of `hmask[16h..]`.
        for (n, ((y, q), sc)) in y
            .as_chunks_mut::<128>()
            .0
            .iter_mut()
            .zip(qs.as_chunks::<32>().0)
            .zip(scales.as_chunks::<8>().0)
            .enumerate()
        {
            let runs = y.as_chunks_mut::<16>().0.iter_mut().zip(sc);
            let quants = q.as_chunks::<16>().0.iter().cycle().zip(hm.iter().cycle());
            for (jh, ((y, &sc), (q, hm))) in runs.zip(quants).enumerate() {
                let j = jh / 2;
                let shift = 2 * j;
                let m = 1u8 << (4 * n + j);
                let dl = d_all * f32::from(i16::from(sc) - 32);
                for ((y, &q), &h) in y.iter_mut().zip(q).zip(hm) {
                    let q = i16::from((q >> shift) & 3) - if h & m != 0 { 0 } else { 4 };
                    *y = dl * f32::from(q);
                }
            }
        }
    }
}

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K / Q5_K block: ggml's `get_scale_min_k4`
/// for j = 0..8, computed four bytes at a time. For j < 4: `sc = q[j] & 63`, `m = q[j + 4] & 63`;
/// for j ≥ 4: `sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)`,
/// `m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4)`.
fn scale_min_k4(raw: [u8; 12]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    // Bits 6..8 of each byte moved to bits 4..6: `(x >> 6) << 4 == (x >> 2) & 0x30`.
    const TOP2: u32 = 0x3030_3030;
    let a = u32::from_le_bytes(field::<0, 4, _>(&raw));
    let b = u32::from_le_bytes(field::<4, 4, _>(&raw));
    let c = u32::from_le_bytes(field::<8, 4, _>(&raw));
    let sc_lo = a & LOW6;
    let m_lo = b & LOW6;
    let sc_hi = (c & LOW4) | ((a >> 2) & TOP2);
    let m_hi = ((c >> 4) & LOW4) | ((b >> 2) & TOP2);
    let join = |lo: u32, hi: u32| (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes();
    (join(sc_lo, sc_hi), join(m_lo, m_hi))
}

/// `dequantize_row_q4_K`: 8 sub-blocks of 32, 4-bit quants, 6-bit scales and mins;
/// `y = (d * sc) * q - dmin * m`.
pub(crate) fn dequantize_q4_k(data: &[u8], out: &mut [f32]) {
    for (y, b) in blocks::<Q4_K_BLOCK>(data, out) {
        let d = f16_at::<0, _>(b);
        let min = f16_at::<2, _>(b);
        let (sc, mn) = scale_min_k4(field::<4, 12, _>(b));
        let qs: [u8; 128] = field::<16, 128, _>(b);
        // Group g of 64 outputs: low nibbles of `qs[32g..32g + 32]` (sub-block 2g), then the
        // high nibbles (sub-block 2g + 1).
        for (((y, q), &[s1, s2]), &[m1, m2]) in y
            .as_chunks_mut::<64>()
            .0
            .iter_mut()
            .zip(qs.as_chunks::<32>().0)
            .zip(sc.as_chunks::<2>().0)
            .zip(mn.as_chunks::<2>().0)
        {
            let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
            let (lo, hi) = y.split_at_mut(32);
            for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(q) {
                *lo = d1 * f32::from(q & 0xF) - m1;
                *hi = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

/// `dequantize_row_q5_K`: as Q4_K with a fifth bit per quant in `qh` (bit 2g for the low
/// nibbles of group g, bit 2g + 1 for the high ones); `y = (d * sc) * q - dmin * m`.
pub(crate) fn dequantize_q5_k(data: &[u8], out: &mut [f32]) {
    for (y, b) in blocks::<Q5_K_BLOCK>(data, out) {
        let d = f16_at::<0, _>(b);
        let min = f16_at::<2, _>(b);
        let (sc, mn) = scale_min_k4(field::<4, 12, _>(b));
        let qh: [u8; 32] = field::<16, 32, _>(b);
        let qs: [u8; 128] = field::<48, 128, _>(b);
        for (g, (((y, q), &[s1, s2]), &[m1, m2])) in y
            .as_chunks_mut::<64>()
            .0
            .iter_mut()
            .zip(qs.as_chunks::<32>().0)
            .zip(sc.as_chunks::<2>().0)
            .zip(mn.as_chunks::<2>().0)
            .enumerate()
        {
            let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
            let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
            let (lo, hi) = y.split_at_mut(32);
            for (((lo, hi), &q), &h) in lo.iter_mut().zip(hi).zip(q).zip(&qh) {
                let q_lo = (q & 0xF) + if h & u1 != 0 { 16 } else { 0 };
                let q_hi = (q >> 4) + if h & u2 != 0 { 16 } else { 0 };
                *lo = d1 * f32::from(q_lo) - m1;
                *hi = d2 * f32::from(q_hi) - m2;
            }
        }
    }
}

/// `dequantize_row_q6_K`: 16 sub-blocks of 16, 4 low bits in `ql` plus 2 high bits in `qh`,
/// offset by 32, signed 8-bit scales; `y = (d * sc) * q`.
pub(crate) fn dequantize_q6_k(data: &[u8], out: &mut [f32]) {
    for (y, b) in blocks::<Q6_K_BLOCK>(data, out) {
        let ql: [u8; 128] = field::<0, 128, _>(b);
        let qh: [u8; 64] = field::<128, 64, _>(b);
        let scales: [u8; 16] = field::<192, 16, _>(b);
        let d = f16_at::<208, _>(b);
        // Half n of 128 outputs reads `ql[64n..64n + 64]`, `qh[32n..32n + 32]`, scales
        // `8n..8n + 8`. Run k of 32 (k = 0..4) is nibble k / 2 of `ql[32 (k % 2) + l]` with bits
        // 2k..2k+2 of `qh[l]`; its first 16 use scale `2k`, the next 16 scale `2k + 1`.
        for (((y, ql), qh), sc) in y
            .as_chunks_mut::<128>()
            .0
            .iter_mut()
            .zip(ql.as_chunks::<64>().0)
            .zip(qh.as_chunks::<32>().0)
            .zip(scales.as_chunks::<8>().0)
        {
            let runs = y.as_chunks_mut::<32>().0.iter_mut();
            let low = ql.as_chunks::<32>().0.iter().cycle();
            for (k, ((y, ql), sc)) in runs.zip(low).zip(sc.as_chunks::<2>().0).enumerate() {
                let (nibble, high) = (4 * (k / 2), 2 * k);
                let subs = y.as_chunks_mut::<16>().0.iter_mut();
                let quants = ql.as_chunks::<16>().0.iter().zip(qh.as_chunks::<16>().0);
                for ((y, (ql, qh)), &sc) in subs.zip(quants).zip(sc) {
                    let ds = d * f32::from(sc as i8);
                    for ((y, &l), &h) in y.iter_mut().zip(ql).zip(qh) {
                        let q = ((l >> nibble) & 0xF) | (((h >> high) & 3) << 4);
                        *y = ds * f32::from(q as i8 - 32);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml() {
        assert_eq!(
            [Q2_K_BLOCK, Q3_K_BLOCK, Q4_K_BLOCK, Q5_K_BLOCK, Q6_K_BLOCK],
            [84, 110, 144, 176, 210]
        );
    }

    /// `get_scale_min_k4` of ggml, transcribed byte by byte.
    fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
        if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        }
    }

    #[test]
    fn scale_min_k4_matches_ggml_for_many_patterns() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut raw = [0u8; 12];
            for r in &mut raw {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                *r = (state >> 56) as u8;
            }
            let (sc, mn) = scale_min_k4(raw);
            for j in 0..8 {
                assert_eq!((sc[j], mn[j]), get_scale_min_k4(j, &raw), "{raw:?} j={j}");
            }
        }
    }

    #[test]
    fn q3_k_scales_unpacking() {
        // Scale s = low | high << 4 with low and high given per scale, packed by hand.
        let want: [u8; 16] = std::array::from_fn(|s| ((s as u8 * 7) % 16) | ((s as u8 % 4) << 4));
        let mut raw = [0u8; 12];
        for (s, &w) in want.iter().enumerate() {
            let (low, high) = (w & 0xF, w >> 4);
            if s < 8 {
                raw[s] |= low;
            } else {
                raw[s - 8] |= low << 4;
            }
            raw[8 + s % 4] |= high << (2 * (s / 4));
        }
        assert_eq!(q3_k_scales(raw), want);
    }

    #[test]
    fn q4_k_single_sub_block() {
        // d = 0.5, dmin = 2, sub-block 0: scale 3, min 1, quant 5 -> 0.5 * 3 * 5 - 2 * 1 = 5.5.
        let mut b = [0u8; Q4_K_BLOCK];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
        b[4] = 3;
        b[8] = 1;
        b[16] = 0x05;
        let mut y = [0f32; QK_K];
        dequantize_q4_k(&b, &mut y);
        assert_eq!(y[0], 5.5);
        assert_eq!(y[1], -2.0);
        assert_eq!(y[32], 0.0); // sub-block 1: scale 0, min 0
    }
}
