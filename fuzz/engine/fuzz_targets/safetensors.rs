//! libFuzzer target `safetensors`: [`cleft_fuzz::safetensors`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cleft_fuzz::safetensors(data);
});
