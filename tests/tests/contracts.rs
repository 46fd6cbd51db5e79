//! Cross-component contracts are checked when a config loads (before anything is built), and
//! each error names the keys on both sides.

use cleft_tests::parse;

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(message: &str, keys: &[&str]) {
    for key in keys {
        assert!(message.contains(key), "`{key}` not named in: {message}");
    }
}

const TEXT_AND_OBJECTIVE: &str = "[text]\ntype = \"gpt2\"\n[objective]\ntype = \"clip\"\n";

#[test]
fn a_three_channel_vit_on_grey_data_names_both_keys_and_the_fix() {
    let text = format!(
        "[vision]\ntype = \"vit\"\npreset = \"vit-s14\"\n{TEXT_AND_OBJECTIVE}\
         [data]\ntype = \"synthetic-cxr\"\nimage_size = 224\n"
    );
    let message = error(&text);
    assert_names(
        &message,
        &["test.toml", "num_channels = 3", "data.channels = 1"],
    );
    assert!(message.contains("set data.channels = 3"), "{message}");
    // The explicit option makes it consistent.
    parse(&format!("{text}channels = 3\n")).expect("grey repeated to 3 channels");
}

#[test]
fn an_image_size_mismatch_names_both_keys() {
    let text = format!(
        "[vision]\ntype = \"vit\"\nimage_size = 32\npatch_size = 8\n{TEXT_AND_OBJECTIVE}\
         [data]\ntype = \"synthetic-cxr\"\nimage_size = 48\n"
    );
    assert_names(
        &error(&text),
        &["vision.image_size = 32", "data.image_size = 48"],
    );
    // `input_size` (position embeddings resized) is the key that makes it fit.
    parse(&text.replace("patch_size = 8\n", "patch_size = 8\ninput_size = 48\n"))
        .expect("input_size matches the data");
}

#[test]
fn text_longer_than_the_positions_names_every_part() {
    let text = "[vision]\ntype = \"vit\"\n[text]\ntype = \"gpt2\"\nn_positions = 32\nmax_len = 24\n\
                [peft]\ntype = \"prompt_tuning\"\nnum_virtual_tokens = 8\n\
                [objective]\ntype = \"clip\"\n[data]\ntype = \"synthetic-cxr\"\n";
    let message = error(text);
    assert_names(
        &message,
        &[
            "33 positions",
            "text.max_len = 24",
            "peft.num_virtual_tokens = 8",
            "text.n_positions = 32",
        ],
    );
    parse(&text.replace("num_virtual_tokens = 8", "num_virtual_tokens = 7")).expect("fits");
}

#[test]
fn stage_two_context_tokens_count_against_the_positions() {
    let text = "[vision]\ntype = \"vit\"\n[text]\ntype = \"bert\"\nmax_position_embeddings = 32\n\
                max_len = 30\n[prompt]\ntype = \"context\"\nnum_tokens = 4\n\
                [objective]\ntype = \"clip\"\n[data]\ntype = \"synthetic-cxr\"\n";
    assert_names(
        &error(text),
        &["prompt.num_tokens = 4", "text.max_position_embeddings = 32"],
    );
}

#[test]
fn a_preset_next_to_a_size_field_names_both() {
    let text = format!(
        "[vision]\ntype = \"vit\"\npreset = \"vit-s14\"\nhidden_size = 512\n{TEXT_AND_OBJECTIVE}\
         [data]\ntype = \"synthetic-cxr\"\nimage_size = 224\nchannels = 3\n"
    );
    assert_names(&error(&text), &["vision.preset", "vision.hidden_size"]);
}

#[test]
fn weights_next_to_a_size_field_names_both() {
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/golden/tiny-hf-vit")
        .display()
        .to_string();
    let text = format!(
        "[vision]\ntype = \"hf-vit\"\nweights = {weights:?}\nnum_hidden_layers = 4\n\
         {TEXT_AND_OBJECTIVE}[data]\ntype = \"synthetic-cxr\"\nimage_size = 32\nchannels = 3\n"
    );
    assert_names(
        &error(&text),
        &["vision.weights", "vision.num_hidden_layers"],
    );
    // Without the size field, the checkpoint's config.json is checked against the data.
    parse(&text.replace("num_hidden_layers = 4\n", "")).expect("tiny HF ViT: 3 channels, 32 px");
    let grey = error(
        &text
            .replace("num_hidden_layers = 4\n", "")
            .replace("channels = 3", "channels = 1"),
    );
    assert_names(
        &grey,
        &["tiny-hf-vit/config.json num_channels", "data.channels = 1"],
    );
}
