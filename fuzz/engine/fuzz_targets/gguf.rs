//! libFuzzer target `gguf`: [`cleft_fuzz::gguf`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cleft_fuzz::gguf(data);
});
