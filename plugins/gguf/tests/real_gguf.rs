//! Checks against SmolLM2-135M-Instruct.Q4_1.gguf and the golden values of
//! `tools/golden_gguf.py` (gguf-py + transformers). These tests FAIL when the asset is missing:
//! run `tools/fetch-assets.sh`.

mod common;

use cleft_gguf::{GgmlType, MetadataValue, TokenType};
use common::{assert_same_sum, f32s, gguf, golden};

#[test]
fn header_and_counts() {
    let (g, f) = (golden(), gguf());
    assert_eq!(f.version() as u64, g["version"].as_u64().unwrap());
    assert_eq!(
        f.tensors().len() as u64,
        g["tensor_count"].as_u64().unwrap()
    );
    assert_eq!(
        f.metadata().len() as u64,
        g["metadata_count"].as_u64().unwrap()
    );
    assert_eq!(f.alignment(), g["alignment"].as_u64().unwrap());
    assert_eq!(f.data_offset(), g["data_offset"].as_u64().unwrap());
    assert_eq!(f.data_offset() % f.alignment(), 0);
    let file_len = std::fs::metadata(common::gguf_path()).unwrap().len();
    assert_eq!(file_len, g["file"]["size"].as_u64().unwrap());

    for (ty, count) in g["tensor_type_counts"].as_object().unwrap() {
        let n = f
            .tensors()
            .iter()
            .filter(|t| t.ggml_type().to_string() == *ty)
            .count();
        assert_eq!(n as u64, count.as_u64().unwrap(), "{ty}");
    }
}

#[test]
fn parameter_count() {
    assert_eq!(gguf().parameter_count(), 134_515_008);
    assert_eq!(
        gguf().parameter_count(),
        golden()["parameter_count"].as_u64().unwrap()
    );
}

#[test]
fn metadata_values() {
    let (g, f) = (golden(), gguf());
    let m = &g["metadata"];
    assert_eq!(
        f.architecture().unwrap(),
        m["general.architecture"].as_str().unwrap()
    );
    assert_eq!(
        f.get_str("general.name").unwrap(),
        m["general.name"].as_str().unwrap()
    );
    assert_eq!(
        f.get_u64("general.file_type").unwrap(),
        m["general.file_type"].as_u64().unwrap()
    );
    let langs = f.get_array("general.languages").unwrap();
    assert_eq!(langs, &[MetadataValue::String("en".into())]);
    assert!(matches!(
        f.get("llama.block_count"),
        Some(MetadataValue::U32(30))
    ));
    assert!(matches!(
        f.get("tokenizer.ggml.add_bos_token"),
        Some(MetadataValue::Bool(false))
    ));

    let hp = f.hyper_params().unwrap();
    assert_eq!(hp.architecture, "llama");
    assert_eq!(hp.block_count, m["llama.block_count"].as_u64().unwrap());
    assert_eq!(
        hp.context_length,
        m["llama.context_length"].as_u64().unwrap()
    );
    assert_eq!(
        hp.embedding_length,
        m["llama.embedding_length"].as_u64().unwrap()
    );
    assert_eq!(
        hp.feed_forward_length,
        m["llama.feed_forward_length"].as_u64()
    );
    assert_eq!(
        hp.head_count,
        m["llama.attention.head_count"].as_u64().unwrap()
    );
    assert_eq!(
        hp.head_count_kv,
        m["llama.attention.head_count_kv"].as_u64().unwrap()
    );
    assert_eq!(hp.rope_freq_base, m["llama.rope.freq_base"].as_f64());
    assert_eq!(
        hp.rope_dimension_count,
        m["llama.rope.dimension_count"].as_u64()
    );
    assert_eq!(
        hp.rms_norm_eps,
        m["llama.attention.layer_norm_rms_epsilon"].as_f64()
    );
    assert_eq!(hp.vocab_size, m["llama.vocab_size"].as_u64());
    assert_eq!(
        (
            hp.block_count,
            hp.head_count,
            hp.head_count_kv,
            hp.context_length
        ),
        (30, 9, 3, 8192)
    );
    assert_eq!(hp.rope_freq_base, Some(100_000.0));

    assert!(matches!(
        f.get_u64("general.name"),
        Err(cleft_gguf::GgufError::WrongType { .. })
    ));
    assert!(matches!(
        f.get_u64("no.such.key"),
        Err(cleft_gguf::GgufError::MissingKey(_))
    ));
}

#[test]
fn tensor_infos_and_shapes() {
    let (g, f) = (golden(), gguf());
    for (name, want) in g["tensors"].as_object().unwrap() {
        let t = f.tensor(name).unwrap_or_else(|| panic!("tensor {name}"));
        assert_eq!(t.name(), name);
        assert_eq!(
            t.ggml_type().to_string(),
            want["ggml_type"].as_str().unwrap(),
            "{name}"
        );
        let dims: Vec<u64> = want["ggml_dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.ggml_dims(), dims.as_slice(), "{name}");
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape, "{name}");
        assert_eq!(
            t.n_elements(),
            want["n_elements"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            f.data_offset() + t.offset(),
            want["abs_offset"].as_u64().unwrap(),
            "{name}"
        );
    }
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(
        (q.ggml_dims(), q.shape()),
        (&[576u64, 576][..], vec![576, 576])
    );
    let k = f.tensor("blk.0.attn_k.weight").unwrap();
    assert_eq!(
        (k.ggml_dims(), k.shape()),
        (&[576u64, 192][..], vec![192, 576])
    );
    let e = f.tensor("token_embd.weight").unwrap();
    assert_eq!(
        (e.ggml_type(), e.shape()),
        (GgmlType::Q8_0, vec![49152, 576])
    );
    assert_eq!(e.n_bytes(), Some(49152 * 576 / 32 * 34));
    assert!(
        f.tensor("output.weight").is_none(),
        "SmolLM2 ties its embeddings"
    );
}

#[test]
fn dequantised_values_match_gguf_py() {
    let (g, f) = (golden(), gguf());
    let mut seen = std::collections::HashSet::new();
    for (name, want) in g["tensors"].as_object().unwrap() {
        let t = f.read_f32(name).unwrap();
        seen.insert(f.tensor(name).unwrap().ggml_type());
        assert_eq!(t.data.len() as u64, want["n_elements"].as_u64().unwrap());
        assert_eq!(t.data[..16], f32s(&want["first16"])[..], "{name} first16");
        for (idx, v) in want["samples"].as_object().unwrap() {
            let i: usize = idx.parse().unwrap();
            assert_eq!(t.data[i], v.as_f64().unwrap() as f32, "{name}[{i}]");
        }
        let sum: f64 = t.data.iter().map(|&x| x as f64).sum();
        let abs_sum: f64 = t.data.iter().map(|&x| (x as f64).abs()).sum();
        let n = t.data.len();
        assert_same_sum(
            sum,
            want["sum"].as_f64().unwrap(),
            n,
            abs_sum,
            &format!("{name} sum"),
        );
        assert_same_sum(
            abs_sum,
            want["abs_sum"].as_f64().unwrap(),
            n,
            abs_sum,
            &format!("{name} abs_sum"),
        );
    }
    for ty in [GgmlType::F32, GgmlType::Q4_1, GgmlType::Q8_0] {
        assert!(seen.contains(&ty), "golden covers {ty}");
    }
}

#[test]
fn unpermuted_qk_match_transformers() {
    let (g, f) = (golden(), gguf());
    for (name, want) in g["unpermuted"].as_object().unwrap() {
        let t = f.read_f32_hf(name).unwrap();
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape);
        let cols = shape[1];
        for (row, vals) in want["rows"].as_object().unwrap() {
            let r: usize = row.parse().unwrap();
            assert_eq!(
                t.data[r * cols..r * cols + 8],
                f32s(vals)[..],
                "{name} row {r}"
            );
        }
        let weighted: f64 = t
            .data
            .chunks_exact(cols)
            .enumerate()
            .map(|(r, row)| r as f64 * row.iter().map(|&x| x as f64).sum::<f64>())
            .sum();
        let weighted_abs: f64 = t
            .data
            .chunks_exact(cols)
            .enumerate()
            .map(|(r, row)| r as f64 * row.iter().map(|&x| f64::from(x.abs())).sum::<f64>())
            .sum();
        assert_same_sum(
            weighted,
            want["row_weighted_sum"].as_f64().unwrap(),
            t.data.len(),
            weighted_abs,
            name,
        );

        // The raw tensor differs (row 1 of the HF layout is row 2 of the stored one) ...
        let raw = f.read_f32(name).unwrap();
        assert_ne!(raw.data, t.data);
        assert_eq!(t.data[cols..2 * cols], raw.data[2 * cols..3 * cols]);
        // ... and permuting back restores it.
        let heads = if name.contains("attn_q") { 9 } else { 3 };
        assert_eq!(
            cleft_gguf::permute(&t.data, shape[0], heads).unwrap(),
            raw.data
        );
    }
    // Other tensors are untouched by the HF layout.
    assert_eq!(
        f.read_f32_hf("blk.0.attn_v.weight").unwrap(),
        f.read_f32("blk.0.attn_v.weight").unwrap()
    );
}

#[test]
fn tokenizer_metadata() {
    let (g, f) = (golden(), gguf());
    let want = &g["tokenizer"];
    let tok = f.tokenizer_data().unwrap();
    assert_eq!(tok.model, want["model"].as_str().unwrap());
    assert_eq!(tok.pre.as_deref(), want["pre"].as_str());
    assert_eq!(tok.tokens.len() as u64, want["n_tokens"].as_u64().unwrap());
    assert_eq!(tok.merges.len() as u64, want["n_merges"].as_u64().unwrap());
    assert_eq!(tok.token_types.len(), tok.tokens.len());
    for (i, t) in want["first_tokens"].as_array().unwrap().iter().enumerate() {
        assert_eq!(tok.tokens[i], t.as_str().unwrap());
    }
    for (i, m) in want["first_merges"].as_array().unwrap().iter().enumerate() {
        assert_eq!(tok.merges[i], m.as_str().unwrap());
    }
    assert_eq!(
        tok.merges.last().unwrap(),
        want["last_merge"].as_str().unwrap()
    );
    let pairs = tok.merge_pairs().unwrap();
    assert_eq!(pairs[0], ("Ġ".to_owned(), "t".to_owned()));
    assert_eq!(
        tok.bos_token_id.map(u64::from),
        want["bos_token_id"].as_u64()
    );
    assert_eq!(
        tok.eos_token_id.map(u64::from),
        want["eos_token_id"].as_u64()
    );
    assert_eq!(
        tok.unknown_token_id.map(u64::from),
        want["unknown_token_id"].as_u64()
    );
    assert_eq!(
        tok.padding_token_id.map(u64::from),
        want["padding_token_id"].as_u64()
    );
    assert_eq!(tok.add_bos_token, want["add_bos_token"].as_bool());
    assert_eq!(tok.token(tok.bos_token_id.unwrap()), Some("<|im_start|>"));
    assert_eq!(tok.token(tok.eos_token_id.unwrap()), Some("<|im_end|>"));
    for (ty, count) in want["token_type_counts"].as_object().unwrap() {
        let ty = TokenType::from_i32(ty.parse().unwrap());
        let n = tok.token_types.iter().filter(|&&t| t == ty).count();
        assert_eq!(n as u64, count.as_u64().unwrap(), "{ty:?}");
    }
    assert!(
        tok.chat_template
            .as_deref()
            .unwrap()
            .contains("<|im_start|>")
    );
    assert!(tok.scores.is_none());
}

#[cfg(feature = "tokenizers")]
#[test]
fn hf_tokenizer_matches_transformers() {
    let (g, f) = (golden(), gguf());
    let want = &g["hf_tokenizer"];
    let tok = f.hf_tokenizer().unwrap();

    for case in want["encodings"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let enc = tok.encode(text, true).unwrap();
        assert_eq!(enc.get_ids(), ids.as_slice(), "{text:?}");
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            case["decoded"].as_str().unwrap(),
            "{text:?}"
        );
    }
    let pair = &want["pair"];
    let enc = tok
        .encode(
            (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap()),
            true,
        )
        .unwrap();
    let ids: Vec<u32> = pair["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let type_ids: Vec<u32> = pair["type_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(enc.get_ids(), ids.as_slice());
    assert_eq!(enc.get_type_ids(), type_ids.as_slice());

    // Same structure as the tokenizer transformers builds.
    let mine: serde_json::Value = serde_json::from_str(&tok.to_string(false).unwrap()).unwrap();
    for key in [
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "added_tokens",
    ] {
        assert_eq!(mine[key], want[key], "{key}");
    }
    for (k, v) in want["model"].as_object().unwrap() {
        assert_eq!(&mine["model"][k], v, "model.{k}");
    }
    assert_eq!(
        tok.get_vocab_size(false) as u64,
        want["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(
        mine["model"]["merges"].as_array().unwrap().len() as u64,
        want["n_merges"].as_u64().unwrap()
    );
}

/// A special-token id outside the vocabulary (a crafted or broken file) is a named error, not
/// an index panic while building the tokenizer.
#[cfg(feature = "tokenizers")]
#[test]
fn special_token_id_outside_the_vocabulary_is_a_named_error() {
    let mut data = gguf().tokenizer_data().unwrap();
    let vocabulary = data.tokens.len();
    data.eos_token_id = Some(vocabulary as u32 + 7);
    let error = cleft_gguf::build_tokenizer(&data).unwrap_err().to_string();
    assert!(
        error.contains(&format!("special token id {}", vocabulary + 7))
            && error.contains(&format!("vocabulary of {vocabulary} tokens")),
        "{error}"
    );
}
