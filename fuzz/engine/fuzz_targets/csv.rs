//! libFuzzer target `csv`: [`cleft_fuzz::csv`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cleft_fuzz::csv(data);
});
