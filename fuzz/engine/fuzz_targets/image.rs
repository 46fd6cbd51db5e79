//! libFuzzer target `image`: [`cleft_fuzz::image`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cleft_fuzz::image(data);
});
