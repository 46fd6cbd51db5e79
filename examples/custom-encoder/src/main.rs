//! Trains the tiny CLEFT configuration with this crate's `grid-pool` vision encoder swapped in
//! by config alone, then reports zero-shot accuracy.
//!
//! `cargo run --release -p cleft-example-custom-encoder -- [steps]`

use anyhow::Result;
use cleft_core::ExperimentConfig;
use cleft_core::burn::module::Module;
use cleft_core::device::parse_device;
use cleft_core::registry::Split;
use cleft_train::eval::zero_shot;
use cleft_train::{Experiment, Stage, TrainOptions};

const TINY: &str = include_str!("../../../configs/tiny/cleft.toml");

fn main() -> Result<()> {
    let steps = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let registry = cleft_example_custom_encoder::registry();
    // Swap the vision section for the plugin's: nothing else changes.
    let vision_end = TINY
        .find("[text]")
        .expect("tiny config has a [text] section");
    let vision_start = TINY
        .find("[vision]")
        .expect("tiny config has a [vision] section");
    let text = format!(
        "{}[vision]\ntype = \"grid-pool\"\n\n{}",
        &TINY[..vision_start],
        &TINY[vision_end..]
    );
    let mut config = ExperimentConfig::parse(&text, "custom-encoder.toml", &registry)?;
    config.train.steps = steps;
    config.output.dir = "runs/custom-encoder".into();
    let device = parse_device("flex")?;
    let mut experiment = Experiment::build(&config, &device)?;
    experiment.train(
        Stage::Contrastive,
        &TrainOptions {
            progress: true,
            ..Default::default()
        },
    )?;
    let test = config.data.build(Split::Test)?;
    let report = zero_shot(
        &experiment.model().valid(),
        test.as_ref(),
        &config.eval.prompt_template,
        config.eval.batch_size,
        &device,
    )?;
    println!(
        "grid-pool encoder: zero-shot accuracy {:.1}% (chance {:.1}%)",
        100.0 * report.accuracy,
        100.0 * report.chance
    );
    Ok(())
}
