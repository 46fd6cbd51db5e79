//! libFuzzer target `peft_adapter`: [`cleft_fuzz::peft_adapter`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cleft_fuzz::peft_adapter(data);
});
