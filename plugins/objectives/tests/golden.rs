//! The objectives against golden values from the PyTorch reference (`tools/golden_objectives.py`,
//! `fixtures/golden/objectives.json`), held to the float64 results under the suite's noise model
//! (`cleft_testing::Tolerance`): a few float32 operations, floored by the reference's own
//! float32-vs-float64 spread (`outputs` vs `outputs_f64` of the same file).

use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_core::registry::ObjectiveConfig;
use cleft_core::{Component, ContrastiveObjective, LocalRows, PairLabels};
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

    /// CLEFT's CLIP loss (sum) at the golden logit scale.
    fn clip_sum(&self, device: &Device) -> ClipInfoNce {
        let config = ClipLossConfig {
            init_logit_scale: self.logit_scale(),
            ..Default::default()
        };
        ClipInfoNce::init(&config, device)
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
    let objective = golden.clip_sum(&device);
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

/// The three objectives built from the golden inputs, with the labels each uses.
fn golden_objectives(
    golden: &Golden,
    device: &Device,
) -> Vec<(
    &'static str,
    Component<dyn ContrastiveObjective>,
    Option<PairLabels>,
)> {
    let labels = PairLabels {
        image: golden.matrix("labels_img", device),
        text: golden.matrix("labels_txt", device),
    };
    let medclip = MedClipLossConfig {
        init_logit_scale: golden.logit_scale(),
        ..Default::default()
    };
    let convirt = ConvirtLossConfig {
        lambda: golden.json["inputs"]["convirt_lambda"].as_f64().unwrap(),
        temperature: golden.json["inputs"]["convirt_tau"].as_f64().unwrap(),
        ..ConvirtLossConfig::default()
    };
    vec![
        (
            "clip_loss_sum",
            Component::<dyn ContrastiveObjective>::new(golden.clip_sum(device)),
            None,
        ),
        (
            "medclip_loss",
            Component::<dyn ContrastiveObjective>::new(MedClipLoss::init(&medclip, device)),
            Some(labels),
        ),
        ("convirt_loss", convirt.build(device).unwrap(), None),
    ]
}

/// The block of replica `rank` of `world` over the golden batch.
fn block(
    image: &Tensor<2>,
    text: &Tensor<2>,
    labels: &Option<PairLabels>,
    rank: usize,
    world: usize,
) -> LocalRows {
    let rows = image.dims()[0] / world;
    LocalRows {
        all_image: image.clone(),
        all_text: text.clone(),
        labels: labels.clone(),
        offset: rank * rows,
        rows,
    }
}

/// A block's loss in float64 from the reference's own `[n, n]` matrices: the weighted means over
/// rows `range` of the cross-entropies of `logits`' rows (image→text) and of `logitsᵀ`' rows
/// (text→image), against the diagonal, or against the softmax of the rows of `similarity` (and of
/// `similarityᵀ`) when given.
fn expected_block(
    logits: &[f64],
    similarity: Option<&[f64]>,
    n: usize,
    range: std::ops::Range<usize>,
    weights: [f64; 2],
) -> f64 {
    let log_softmax = |row: Vec<f64>| -> Vec<f64> {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
        row.into_iter().map(|v| v - log_sum).collect()
    };
    let at = |m: &[f64], transposed: bool, i: usize, j: usize| match transposed {
        false => m[i * n + j],
        true => m[j * n + i],
    };
    let mut total = 0.0;
    for (direction, weight) in weights.into_iter().enumerate() {
        let transposed = direction == 1;
        let mut sum = 0.0;
        for i in range.clone() {
            let scores = log_softmax((0..n).map(|j| at(logits, transposed, i, j)).collect());
            sum -= match similarity {
                None => scores[i],
                Some(s) => {
                    let targets = log_softmax((0..n).map(|j| at(s, transposed, i, j)).collect());
                    scores.iter().zip(targets).map(|(l, t)| l * t.exp()).sum()
                }
            };
        }
        total += weight * sum / range.len() as f64;
    }
    total
}

/// open_clip's `local_loss` form: replicas holding rows `r·b..(r+1)·b` of the golden batch
/// (B = 6, as 2 × 3 and 3 × 2) each compute only their block of the similarity matrix and of its
/// transpose. Each block's loss is that block's part of the reference's matrices (not the global
/// loss, which a replica computing the whole matrix would return), and the mean over replicas is
/// the reference's global loss.
#[test]
fn local_blocks_average_to_the_reference_loss() {
    let golden = Golden::load();
    let device = Device::flex();
    let image = golden.matrix("img", &device);
    let text = golden.matrix("txt", &device);
    let matrix = |name: &str| -> Vec<f64> {
        let values = golden.json["outputs_f64"][name].as_array().unwrap();
        values.iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let lambda = golden.json["inputs"]["convirt_lambda"].as_f64().unwrap();
    let similarity = matrix("medclip_label_sim");
    for (name, objective, labels) in golden_objectives(&golden, &device) {
        let (logits, soft, weights) = match name {
            "clip_loss_sum" => (matrix("clip_logits_per_image"), None, [1.0, 1.0]),
            "medclip_loss" => (
                matrix("medclip_logits_per_image"),
                Some(similarity.as_slice()),
                [0.5, 0.5],
            ),
            _ => (matrix("convirt_sim_over_tau"), None, [lambda, 1.0 - lambda]),
        };
        for world in [2, 3] {
            let mut total = 0.0;
            for rank in 0..world {
                let rows = block(&image, &text, &labels, rank, world);
                let expected = expected_block(&logits, soft, 6, rows.range(), weights);
                let loss = objective.forward_local(rows).loss.into_scalar::<f64>();
                Tolerance::f32_ops()
                    .with_spread(
                        golden.spread(name),
                        "objectives.json outputs vs outputs_f64",
                    )
                    .check(
                        &format!("{name} block {rank} of {world}"),
                        &[loss as f32],
                        &[expected as f32],
                    );
                total += loss;
            }
            golden.check(name, total / world as f64);
        }
    }
}

/// The gradients of the blocks, averaged over replicas, are the reference's gradients of the
/// global loss (what every replica back-propagates after summing them), for the embeddings and
/// the logit scale.
#[test]
fn local_block_gradients_average_to_the_reference_gradients() {
    let golden = Golden::load();
    let device = Device::flex().autodiff();
    let objective = golden.clip_sum(&device);
    let world = 3;
    let mut sums: Vec<Vec<f32>> = vec![vec![0.0; 6 * 8], vec![0.0; 6 * 8], vec![0.0]];
    for rank in 0..world {
        let image = golden.matrix("img", &device).require_grad();
        let text = golden.matrix("txt", &device).require_grad();
        let rows = block(&image, &text, &None, rank, world);
        let grads = objective.forward_local(rows).loss.backward();
        let parts = [
            image.grad(&grads).unwrap(),
            text.grad(&grads).unwrap().reshape([6, 8]),
        ];
        for (sum, part) in sums.iter_mut().zip(parts) {
            let values = part.into_data().try_to_vec::<f32>().unwrap();
            sum.iter_mut().zip(values).for_each(|(s, v)| *s += v);
        }
        sums[2][0] += objective
            .logit_scale
            .grad(&grads)
            .unwrap()
            .into_scalar::<f32>();
    }
    let tolerance = Tolerance::f32_ops().with_spread(
        golden.spread("clip_loss_sum"),
        "objectives.json clip_loss_sum outputs vs outputs_f64",
    );
    for (sum, name) in sums.iter().zip(["d_img", "d_txt", "d_logit_scale"]) {
        let expected: Vec<f32> = match &golden.json["grads_f64_clip_loss_sum"][name] {
            Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap() as f32).collect(),
            value => vec![value.as_f64().unwrap() as f32],
        };
        let mean: Vec<f32> = sum.iter().map(|v| v / world as f32).collect();
        tolerance.check(name, &mean, &expected);
    }
}
