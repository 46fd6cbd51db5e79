//! The objectives against golden values from the PyTorch reference (`tools/golden_objectives.py`,
//! `fixtures/golden/objectives.json`).

use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_core::registry::ObjectiveConfig;
use cleft_core::{ContrastiveObjective, PairLabels};
use cleft_objectives::{
    ClipInfoNce, ClipLossConfig, ConvirtLossConfig, MedClipLoss, MedClipLossConfig, Reduction,
};
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

    fn logit_scale(&self) -> f64 {
        self.json["inputs"]["logit_scale"].as_f64().unwrap()
    }
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-5 * expected.abs().max(1.0),
        "{what}: {actual} vs {expected}"
    );
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
        close(loss, golden.output(name), name);
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
    let expected = |name: &str| -> Vec<f64> {
        golden.json["grads_f64_clip_loss_sum"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    for (tensor, name) in [(image, "d_img"), (text, "d_txt")] {
        let actual = tensor
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (a, e) in actual.iter().zip(expected(name)) {
            assert!(
                (*a as f64 - e).abs() < 1e-4 * e.abs().max(1.0),
                "{name}: {a} vs {e}"
            );
        }
    }
    let d_scale = objective
        .logit_scale
        .grad(&grads)
        .unwrap()
        .into_scalar::<f64>();
    close(
        d_scale,
        golden.json["grads_f64_clip_loss_sum"]["d_logit_scale"]
            .as_f64()
            .unwrap(),
        "d_logit_scale",
    );
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
    close(loss, golden.output("medclip_loss"), "medclip_loss");
}

#[test]
fn convirt_matches_the_reference() {
    let golden = Golden::load();
    let device = Device::flex();
    let config = ConvirtLossConfig {
        lambda: golden.json["inputs"]["convirt_lambda"].as_f64().unwrap(),
        temperature: golden.json["inputs"]["convirt_tau"].as_f64().unwrap(),
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
    close(loss, golden.output("convirt_loss"), "convirt_loss");
}

#[test]
fn convirt_rejects_a_weight_outside_the_unit_interval() {
    let config = ConvirtLossConfig {
        lambda: 1.5,
        temperature: 0.1,
    };
    assert!(
        config
            .build(&Device::flex())
            .unwrap_err()
            .to_string()
            .contains("objective.lambda")
    );
}
