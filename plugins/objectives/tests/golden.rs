//! The objectives against golden values from the PyTorch reference (`tools/golden_objectives.py`,
//! `fixtures/golden/objectives.json`), held to the float64 results under the suite's noise model
//! (`cleft_testing::Tolerance`): a few float32 operations, floored by the reference's own
//! float32-vs-float64 spread (`outputs` vs `outputs_f64` of the same file).

use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_core::registry::ObjectiveConfig;
use cleft_core::{ContrastiveObjective, PairLabels};
use cleft_objectives::{
    ClipInfoNce, ClipLossConfig, ConvirtLossConfig, MedClipLoss, MedClipLossConfig, Reduction,
};
use cleft_testing::Tolerance;
use serde_json::Value;

struct Golden {
    json: Value,
}

impl Golden {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/golden/objectives.json"
        );
        let text = std::fs::read_to_string(path).expect("fixtures/golden/objectives.json");
        Self {
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    fn matrix(&self, name: &str, device: &Device) -> Tensor<2> {
        let values: Vec<f32> = self.json["inputs"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let shape = &self.json["shapes"][name];
        let shape = [
            shape[0].as_u64().unwrap() as usize,
            shape[1].as_u64().unwrap() as usize,
        ];
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn output(&self, name: &str) -> f64 {
        self.json["outputs_f64"][name].as_f64().unwrap()
    }

    /// The reference's own float32-vs-float64 spread of output `name`.
    fn spread(&self, name: &str) -> f64 {
        (self.json["outputs"][name].as_f64().unwrap() - self.output(name)).abs()
    }

    /// Checks a float32 result against output `name`'s float64 value.
    fn check(&self, name: &str, actual: f64) {
        Tolerance::f32_ops()
            .with_spread(self.spread(name), "objectives.json outputs vs outputs_f64")
            .check(name, &[actual as f32], &[self.output(name) as f32]);
    }

    fn logit_scale(&self) -> f64 {
        self.json["inputs"]["logit_scale"].as_f64().unwrap()
    }
}

#[test]
fn clip_sum_and_mean_match_the_reference() {
    let golden = Golden::load();
    let device = Device::flex();
    for (reduction, name) in [
        (Reduction::Sum, "clip_loss_sum"),
        (Reduction::Mean, "clip_loss_mean"),
    ] {
        let config = ClipLossConfig {
            reduction,
            init_logit_scale: golden.logit_scale(),
            ..Default::default()
        };
        let loss = ClipInfoNce::init(&config, &device)
            .forward(
                golden.matrix("img", &device),
                golden.matrix("txt", &device),
                None,
            )
            .loss
            .into_scalar::<f64>();
        golden.check(name, loss);
    }
}

#[test]
fn clip_gradients_match_the_reference() {
    let golden = Golden::load();
    let device = Device::flex().autodiff();
    let config = ClipLossConfig {
        init_logit_scale: golden.logit_scale(),
        ..Default::default()
    };
    let objective = ClipInfoNce::init(&config, &device);
    let image = golden.matrix("img", &device).require_grad();
    let text = golden.matrix("txt", &device).require_grad();
    let grads = objective
        .forward(image.clone(), text.clone(), None)
        .loss
        .backward();
    let expected = |name: &str| -> Vec<f32> {
        golden.json["grads_f64_clip_loss_sum"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    // Gradients come from the same few operations as the loss (no recorded float32 twin).
    let tolerance = Tolerance::f32_ops().with_spread(
        golden.spread("clip_loss_sum"),
        "objectives.json clip_loss_sum outputs vs outputs_f64",
    );
    for (tensor, name) in [(image, "d_img"), (text, "d_txt")] {
        let actual = tensor
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        tolerance.check(name, &actual, &expected(name));
    }
    let d_scale = objective
        .logit_scale
        .grad(&grads)
        .unwrap()
        .into_scalar::<f64>();
    let want = golden.json["grads_f64_clip_loss_sum"]["d_logit_scale"]
        .as_f64()
        .unwrap();
    tolerance.check("d_logit_scale", &[d_scale as f32], &[want as f32]);
}

#[test]
fn medclip_soft_targets_match_the_reference() {
    let golden = Golden::load();
    let device = Device::flex();
    let config = MedClipLossConfig {
        init_logit_scale: golden.logit_scale(),
        ..Default::default()
    };
    let labels = PairLabels {
        image: golden.matrix("labels_img", &device),
        text: golden.matrix("labels_txt", &device),
    };
    let loss = MedClipLoss::init(&config, &device)
        .forward(
            golden.matrix("img", &device),
            golden.matrix("txt", &device),
            Some(labels),
        )
        .loss
        .into_scalar::<f64>();
    golden.check("medclip_loss", loss);
}

#[test]
fn convirt_matches_the_reference() {
    let golden = Golden::load();
    let device = Device::flex();
    let config = ConvirtLossConfig {
        lambda: golden.json["inputs"]["convirt_lambda"].as_f64().unwrap(),
        temperature: golden.json["inputs"]["convirt_tau"].as_f64().unwrap(),
        ..ConvirtLossConfig::default()
    };
    let objective = config.build(&device).unwrap();
    // ConVIRT works on cosine similarity: the normalised embeddings give exactly that.
    let loss = objective
        .forward(
            golden.matrix("img", &device),
            golden.matrix("txt", &device),
            None,
        )
        .loss
        .into_scalar::<f64>();
    golden.check("convirt_loss", loss);
}

#[test]
fn convirt_rejects_a_weight_outside_the_unit_interval() {
    let config = ConvirtLossConfig {
        lambda: 1.5,
        temperature: 0.1,
        ..ConvirtLossConfig::default()
    };
    assert!(
        config
            .build(&Device::flex())
            .unwrap_err()
            .to_string()
            .contains("objective.lambda")
    );
}
