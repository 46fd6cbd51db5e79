//! With prompt tuning the virtual tokens sit in front of the text, so CLEFT's first-pad pooling
//! must pick position `P + n_real` of the `P + L` hidden states.

use std::any::Any;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cleft_core::bridge::DynModuleUpcast;
use cleft_core::registry::{PeftConfig, TextEncoderConfig};
use cleft_core::{Component, TextEncoder};
use cleft_gpt::{Gpt2Config, Gpt2Model};

#[test]
fn gpt2_first_pad_pooling_skips_the_virtual_tokens() {
    let device = Device::flex();
    let encoder = Gpt2Config::default().build(&device).unwrap();
    let peft = cleft_peft::PromptTuningConfig {
        num_virtual_tokens: 3,
        ..Default::default()
    };
    let encoder: Component<dyn TextEncoder> = peft.build().unwrap().apply(encoder).unwrap();
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(vec![5i64, 6, 7, 0, 8, 9, 0, 0], [2, 4]),
        &device,
    );
    let mask = Tensor::<2, Int>::from_data(
        TensorData::new(vec![1i64, 1, 1, 0, 1, 1, 0, 0], [2, 4]),
        &device,
    );
    let any: &dyn Any = encoder.as_dyn_module();
    let model = any.downcast_ref::<Gpt2Model>().expect("a GPT-2 encoder");
    let hidden = model.hidden_states(encoder.embed_tokens(ids.clone()), mask.clone());
    assert_eq!(hidden.dims()[1], 3 + 4);
    let pooled = encoder.forward(ids, mask);
    let expected = Tensor::cat(
        vec![
            hidden.clone().slice([0..1, 6..7]),
            hidden.slice([1..2, 5..6]),
        ],
        0,
    )
    .reshape([2, model.dim()]);
    assert_eq!(
        pooled.into_data(),
        expected.into_data(),
        "rows pool at P + n_real = 6 and 5"
    );
}
