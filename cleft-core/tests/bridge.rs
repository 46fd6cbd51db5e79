//! The bridge lets boxed components train, freeze and save like any burn module.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use cleft_core::{Component, VisionEncoder, VisionOutput};
use cleft_testing::param_values;

/// A minimal vision encoder: flatten, then a linear layer.
#[derive(Module, Debug)]
struct FlattenEncoder {
    patch: Linear,
    stem: Linear,
}

impl VisionEncoder for FlattenEncoder {
    fn forward(&self, images: Tensor<4>) -> VisionOutput {
        let [batch, c, h, w] = images.dims();
        let flat = images.reshape([batch, c * h * w]);
        VisionOutput {
            pooled: self.stem.forward(self.patch.forward(flat)),
            tokens: None,
        }
    }
    fn dim(&self) -> usize {
        3
    }
    fn channels(&self) -> usize {
        1
    }
    fn image_size(&self) -> usize {
        2
    }
}

/// A composed model whose field is a boxed component.
#[derive(Module, Debug)]
struct Composed {
    vision: Component<dyn VisionEncoder>,
    head: Linear,
}

fn composed(device: &Device) -> Composed {
    let encoder = FlattenEncoder {
        patch: LinearConfig::new(4, 5).init(device),
        stem: LinearConfig::new(5, 3).init(device),
    };
    Composed {
        vision: Component::<dyn VisionEncoder>::new(encoder),
        head: LinearConfig::new(3, 2).init(device),
    }
}

fn loss(model: &Composed, device: &Device) -> Tensor<1> {
    let images = Tensor::<4>::from_floats([[[[0.5, -1.0], [2.0, 0.25]]]], device);
    model
        .head
        .forward(model.vision.forward(images).pooled)
        .powi_scalar(2)
        .sum()
}

#[test]
fn parameter_paths_go_through_the_component() {
    let paths: Vec<String> = param_values(&composed(&Device::flex()))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        paths,
        [
            "vision.patch.weight",
            "vision.patch.bias",
            "vision.stem.weight",
            "vision.stem.bias",
            "head.weight",
            "head.bias"
        ]
    );
}

#[test]
fn gradients_reach_parameters_inside_a_boxed_component() {
    let device = Device::flex().autodiff();
    let model = composed(&device);
    let grads = loss(&model, &device).backward();
    let grads = GradientsParams::from_grads(grads, &model);
    let mut count = Counter {
        seen: 0,
        with_grad: 0,
        grads: &grads,
    };
    model.visit(&mut count);
    assert_eq!(count.seen, 6);
    assert_eq!(
        count.with_grad, 6,
        "every parameter, boxed or not, receives a gradient"
    );
}

struct Counter<'a> {
    seen: usize,
    with_grad: usize,
    grads: &'a GradientsParams,
}

impl ModuleVisitor for Counter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.seen += 1;
        if let Some(grad) = self.grads.get::<D>(param.id) {
            assert!(grad.abs().sum().into_scalar::<f32>() > 0.0);
            self.with_grad += 1;
        }
    }
}

#[test]
fn an_optimizer_step_changes_exactly_the_trainable_parameters() {
    let device = Device::flex().autodiff();
    let frozen = ParamGroup::from_regex(r"^vision\.patch\..*").unwrap();
    let model = composed(&device).set_require_grad_group(frozen, false);
    let before = param_values(&model);
    let mut optimizer = AdamWConfig::new().init();
    let grads = GradientsParams::from_grads(loss(&model, &device).backward(), &model);
    let model = optimizer.step(1e-2, model, grads);
    for ((path, old), (_, new)) in before.iter().zip(param_values(&model)) {
        if path.starts_with("vision.patch.") {
            assert_eq!(old, &new, "{path} is frozen and must stay bit-identical");
        } else {
            assert_ne!(old, &new, "{path} is trainable and must change");
        }
    }
}

#[test]
fn save_then_load_round_trips_bit_exactly_by_path() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("cleft-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("composed.safetensors");
    let original = composed(&device);
    cleft_core::store::save_safetensors(&original, &file).unwrap();
    let mut restored = composed(&device);
    assert_ne!(
        param_values(&original),
        param_values(&restored),
        "fresh init differs"
    );
    cleft_core::store::load_safetensors(&mut restored, &file).unwrap();
    assert_eq!(param_values(&original), param_values(&restored));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loading_a_checkpoint_with_a_missing_tensor_names_it() {
    #[derive(Module, Debug)]
    struct HeadOnly {
        head: Linear,
    }
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("cleft-bridge-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("head.safetensors");
    cleft_core::store::save_safetensors(
        &HeadOnly {
            head: LinearConfig::new(3, 2).init(&device),
        },
        &file,
    )
    .unwrap();
    let message = cleft_core::store::load_safetensors(&mut composed(&device), &file)
        .unwrap_err()
        .to_string();
    assert!(message.contains("vision.patch.weight"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn valid_train_and_clone_keep_the_concrete_component() {
    let device = Device::flex().autodiff();
    let model = composed(&device);
    let valid = model.valid();
    assert!(
        !valid
            .vision
            .forward(Tensor::zeros([1, 1, 2, 2], &device.clone().inner()))
            .pooled
            .device()
            .is_autodiff()
    );
    let cloned = model.clone();
    assert_eq!(param_values(&cloned), param_values(&model));
    assert_eq!(model.num_params(), 4 * 5 + 5 + 5 * 3 + 3 + 3 * 2 + 2);
}
