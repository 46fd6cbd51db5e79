//! Tokenizers built from GGUF metadata against the ones transformers builds from the same files.
//!
//! - `fixtures/golden/gguf-tokenizers/*.gguf` and `gguf_tokenizers.json` (`tools/
//!   golden_gguf_tokenizers.py`): tiny sentencepiece vocabularies (LLaMA-2 / Mistral style,
//!   Gemma style, Phi-3) and byte-level BPE with the `llama-bpe` and `qwen2` pre-tokenizers;
//! - Gemma-3-270M's real vocabulary (`$CLEFT_ASSETS/gemma3-270m/gemma-3-270m-q4_k_m.gguf`, put
//!   there by `tools/fetch-assets.sh`; this test FAILS when it is missing) against
//!   `fixtures/golden/gemma3_270m.json`.
#![cfg(feature = "tokenizers")]

use std::path::PathBuf;

use cleft_gguf::{GgufError, GgufFile, build_tokenizer};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

fn read_json(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("array of ids")
        .iter()
        .map(|v| u32::try_from(v.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

fn fixture(name: &str) -> GgufFile {
    GgufFile::open(golden_dir().join("gguf-tokenizers").join(name)).expect("open fixture")
}

/// SHA-256 (FIPS 180-4) of `data`, lower-case hex.
fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_matches_known_digests() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let long = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".repeat(3);
    assert_eq!(
        sha256_hex(long.as_bytes()),
        "50ea825d9684f4229ca29f1fec511593e281e46a140d81e0005f8f688669a06c"
    );
    assert_eq!(
        sha256_hex("▁é\n".repeat(40).as_bytes()),
        "494953aa029fc889531537cf49568cff3a62a1ad65c66f0b9290d7ee28ae59ad"
    );
}

/// The merges of a built tokenizer, as its JSON serialisation lists them.
fn merges_of(json: &Value) -> Vec<(String, String)> {
    json["model"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|m| {
            let pair = m.as_array().expect("merge pair");
            (
                pair[0].as_str().expect("left").to_owned(),
                pair[1].as_str().expect("right").to_owned(),
            )
        })
        .collect()
}

fn merges_sha256(merges: &[(String, String)]) -> String {
    let joined: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    sha256_hex(joined.join("\n").as_bytes())
}

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .expect("merge list")
        .iter()
        .map(|m| {
            (
                m[0].as_str().expect("left").to_owned(),
                m[1].as_str().expect("right").to_owned(),
            )
        })
        .collect()
}

/// Every text, with and without special tokens, and the pipeline's structure.
fn check_fixture(file: &str) {
    let golden = read_json("gguf_tokenizers.json");
    let want = &golden["files"][file];
    assert!(want.is_object(), "{file} missing from gguf_tokenizers.json");
    let gguf = fixture(file);
    let data = gguf.tokenizer_data().unwrap();
    let tokenizer = gguf.hf_tokenizer().unwrap();

    let mut mismatches = Vec::new();
    for case in want["encodings"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let plain = tokenizer.encode(text, false).unwrap();
        if plain.get_ids() != ids(&case["ids_plain"]).as_slice() {
            mismatches.push(format!(
                "{text:?} without special tokens: got {:?}, transformers {:?}",
                plain.get_ids(),
                ids(&case["ids_plain"])
            ));
        }
        let special = tokenizer.encode(text, true).unwrap();
        if special.get_ids() != ids(&case["ids_with_special"]).as_slice() {
            mismatches.push(format!(
                "{text:?} with special tokens: got {:?}, transformers {:?}",
                special.get_ids(),
                ids(&case["ids_with_special"])
            ));
        }
        // What a caller that encodes plainly and adds BOS/EOS itself gets.
        let mut by_hand: Vec<u32> = data.bos_id_to_add().into_iter().collect();
        by_hand.extend_from_slice(plain.get_ids());
        by_hand.extend(data.eos_id_to_add());
        assert_eq!(by_hand, special.get_ids(), "{file}: {text:?}");
    }
    assert!(
        mismatches.is_empty(),
        "{file}: {} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    assert_eq!(
        data.adds_bos_token(),
        want["add_bos_token"].as_bool().unwrap(),
        "{file}"
    );
    assert_eq!(
        data.adds_eos_token(),
        want["add_eos_token"].as_bool().unwrap(),
        "{file}"
    );
    if data.adds_bos_token() {
        assert_eq!(
            data.bos_id_to_add().map(u64::from),
            want["bos_token_id"].as_u64(),
            "{file}"
        );
    }

    let mine: Value = serde_json::from_str(&tokenizer.to_string(false).unwrap()).unwrap();
    for key in [
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "added_tokens",
    ] {
        assert_eq!(mine[key], want[key], "{file}: {key}");
    }
    for (k, v) in want["model"].as_object().unwrap() {
        assert_eq!(&mine["model"][k], v, "{file}: model.{k}");
    }
    assert_eq!(
        tokenizer.get_vocab_size(true) as u64,
        want["vocab_size"].as_u64().unwrap(),
        "{file}"
    );
    let merges = merges_of(&mine);
    assert_eq!(
        merges.len() as u64,
        want["n_merges"].as_u64().unwrap(),
        "{file}"
    );
    assert_eq!(
        merges.iter().take(20).cloned().collect::<Vec<_>>(),
        pairs(&want["first_merges"]),
        "{file}"
    );
    assert_eq!(
        merges[merges.len().saturating_sub(20)..].to_vec(),
        pairs(&want["last_merges"]),
        "{file}"
    );
    assert_eq!(
        merges_sha256(&merges),
        want["merges_sha256"].as_str().unwrap(),
        "{file}"
    );
}

#[test]
fn sentencepiece_llama_matches_transformers() {
    check_fixture("spm-llama.gguf");
}

#[test]
fn sentencepiece_gemma_layout_matches_transformers() {
    check_fixture("spm-gemma.gguf");
}

#[test]
fn sentencepiece_phi3_matches_transformers() {
    check_fixture("spm-phi3.gguf");
}

#[test]
fn byte_level_llama_bpe_matches_transformers() {
    check_fixture("bpe-llama3.gguf");
}

#[test]
fn byte_level_qwen2_matches_transformers() {
    check_fixture("bpe-qwen2.gguf");
}

#[test]
fn sentencepiece_adds_bos_unless_the_file_says_otherwise() {
    let mut data = fixture("spm-llama.gguf").tokenizer_data().unwrap();
    assert_eq!(data.add_bos_token, None);
    assert!(data.adds_bos_token());
    assert_eq!(data.bos_id_to_add(), Some(1));
    assert_eq!(data.eos_id_to_add(), None);
    data.add_bos_token = Some(false);
    assert_eq!(data.bos_id_to_add(), None);
    let tokenizer = build_tokenizer(&data).unwrap();
    let plain = tokenizer.encode("Hello", false).unwrap();
    let special = tokenizer.encode("Hello", true).unwrap();
    assert_eq!(plain.get_ids(), special.get_ids());
    // No BOS to add without a BOS token, whatever the flag.
    data.add_bos_token = Some(true);
    data.bos_token_id = None;
    assert!(!data.adds_bos_token());
}

#[test]
fn unknown_model_is_a_named_error_listing_the_supported_ones() {
    let mut data = fixture("spm-llama.gguf").tokenizer_data().unwrap();
    data.model = "t5".into();
    let error = build_tokenizer(&data).unwrap_err();
    assert!(
        matches!(error, GgufError::UnsupportedTokenizer(_)),
        "{error}"
    );
    let error = error.to_string();
    assert!(
        error.contains("tokenizer.ggml.model")
            && error.contains("`t5`")
            && error.contains("gpt2")
            && error.contains("llama"),
        "{error}"
    );
}

#[test]
fn unsupported_pre_is_a_named_error_listing_the_supported_ones() {
    let mut data = fixture("bpe-qwen2.gguf").tokenizer_data().unwrap();
    data.pre = Some("tekken".into());
    let error = build_tokenizer(&data).unwrap_err();
    assert!(
        matches!(error, GgufError::UnsupportedTokenizer(_)),
        "{error}"
    );
    let error = error.to_string();
    assert!(
        error.contains("tokenizer.ggml.pre")
            && error.contains("`tekken`")
            && error.contains("llama-bpe")
            && error.contains("qwen2"),
        "{error}"
    );
}

#[test]
fn sentencepiece_without_scores_or_with_nan_scores_is_a_named_error() {
    let mut data = fixture("spm-llama.gguf").tokenizer_data().unwrap();
    let scores = data.scores.take();
    let error = build_tokenizer(&data).unwrap_err().to_string();
    assert!(error.contains("tokenizer.ggml.scores"), "{error}");
    let mut scores = scores.unwrap();
    scores.truncate(10);
    data.scores = Some(scores.clone());
    let error = build_tokenizer(&data).unwrap_err().to_string();
    assert!(
        error.contains("tokenizer.ggml.scores") && error.contains("10 values"),
        "{error}"
    );
    let mut data = fixture("spm-llama.gguf").tokenizer_data().unwrap();
    if let Some(scores) = data.scores.as_mut() {
        scores[300] = f32::NAN;
    }
    let error = build_tokenizer(&data).unwrap_err().to_string();
    assert!(
        error.contains("tokenizer.ggml.scores") && error.contains("token 300"),
        "{error}"
    );
}

/// Gemma-3-270M's real vocabulary (262,144 tokens, no merges in the file) against
/// `fixtures/golden/gemma3_270m.json` (`tokenizer`, `tokenized_texts`).
#[test]
fn gemma3_270m_matches_transformers() {
    let path = cleft_testing::require_asset("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    let want = read_json("gemma3_270m.json");
    let gguf = GgufFile::open(path).unwrap();
    let data = gguf.tokenizer_data().unwrap();
    let tokenizer = build_tokenizer(&data).unwrap();
    let t = &want["tokenizer"];
    assert_eq!(data.adds_bos_token(), t["add_bos_token"].as_bool().unwrap());
    assert_eq!(data.adds_eos_token(), t["add_eos_token"].as_bool().unwrap());
    let bos = data.bos_id_to_add();
    assert_eq!(bos.map(u64::from), t["bos_token_id"].as_u64());

    let mut mismatches = Vec::new();
    let cases = want["tokenized_texts"].as_array().expect("tokenized_texts");
    assert!(cases.len() >= 20, "{} texts", cases.len());
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let plain = tokenizer.encode(text, false).unwrap();
        let special = tokenizer.encode(text, true).unwrap();
        let mut with_bos: Vec<u32> = bos.into_iter().collect();
        with_bos.extend_from_slice(plain.get_ids());
        if plain.get_ids() != ids(&case["ids_plain"]).as_slice() {
            mismatches.push(format!(
                "{text:?} plain: got {:?}, transformers {:?}",
                plain.get_ids(),
                ids(&case["ids_plain"])
            ));
        }
        if with_bos != ids(&case["ids_with_special"])
            || special.get_ids() != ids(&case["ids_with_special"]).as_slice()
        {
            mismatches.push(format!(
                "{text:?} with special tokens: got {:?} (BOS + plain {with_bos:?}), transformers {:?}",
                special.get_ids(),
                ids(&case["ids_with_special"])
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // The pipeline transformers builds.
    let mine: Value = serde_json::from_str(&tokenizer.to_string(false).unwrap()).unwrap();
    let backend = &t["backend_tokenizer"];
    for key in ["normalizer", "pre_tokenizer", "post_processor", "decoder"] {
        assert_eq!(mine[key], backend[key], "{key}");
    }
    for (k, v) in backend["model"].as_object().unwrap() {
        if k != "vocab_len" && k != "merges_len" {
            assert_eq!(&mine["model"][k], v, "model.{k}");
        }
    }
    assert_eq!(
        tokenizer.get_vocab_size(true) as u64,
        t["len_tokenizer"].as_u64().unwrap()
    );
    let added = mine["added_tokens"].as_array().unwrap();
    let special = added.iter().filter(|a| a["special"] == true).count();
    assert_eq!(
        added.len() as u64,
        t["added_tokens"]["count"].as_u64().unwrap()
    );
    assert_eq!(
        special as u64,
        t["added_tokens"]["special"].as_u64().unwrap()
    );
    for (a, b) in added
        .iter()
        .zip(t["added_tokens"]["first_10"].as_array().unwrap())
    {
        assert_eq!(a, b);
    }

    // The merges derived from the vocabulary.
    let merges = merges_of(&mine);
    let m = &t["merges"];
    assert_eq!(merges.len() as u64, m["count"].as_u64().unwrap());
    assert_eq!(
        merges.iter().take(20).cloned().collect::<Vec<_>>(),
        pairs(&m["first_20"])
    );
    assert_eq!(
        merges[merges.len().saturating_sub(20)..].to_vec(),
        pairs(&m["last_20"])
    );
    assert_eq!(merges_sha256(&merges), m["sha256_joined"].as_str().unwrap());
}
