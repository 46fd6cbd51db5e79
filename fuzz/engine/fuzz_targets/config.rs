//! libFuzzer target `config`: [`cleft_fuzz::config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cleft_fuzz::config(data);
});
