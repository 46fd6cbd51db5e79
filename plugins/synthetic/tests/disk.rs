//! The synthetic benchmark written to disk reads back through the real `chexpert` loader.

use cleft_core::data::ImageTextDataset;
use cleft_core::registry::Split;
use cleft_datasets::{ChexpertConfig, FIVE_CLASSES, FiveByTwoHundred};
use cleft_imaging::ImageOptions;
use cleft_synthetic::{FINDINGS, SynthTreeOptions, write_chexpert_tree};

#[test]
fn synthetic_tree_is_read_by_the_chexpert_loader_with_reports_as_captions() {
    let out = std::env::temp_dir().join(format!("cleft-synth-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = SynthTreeOptions {
        train: 30,
        valid: 5,
        test_per_class: 4,
        size: 64,
        seed: 7,
    };
    let calls = std::cell::Cell::new(0);
    let tree = write_chexpert_tree(&out, &options, &|_, _| calls.set(calls.get() + 1)).unwrap();
    assert_eq!(tree.images, 30 + 5 + 20);
    assert_eq!(calls.get(), tree.images);
    let header = std::fs::read_to_string(&tree.train_csv).unwrap();
    assert!(
        header.starts_with(
            "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,"
        ),
        "{}",
        header.lines().next().unwrap()
    );
    let config = ChexpertConfig {
        csv: tree.train_csv.clone(),
        valid_csv: Some(tree.valid_csv.clone()),
        image_root: tree.root.clone(),
        report_column: Some("Report".into()),
        labels: FINDINGS.iter().map(|s| s.to_string()).collect(),
        test: FiveByTwoHundred {
            per_class: 4,
            seed: 1,
            csv: Some(tree.test_csv.clone()),
        },
        image: ImageOptions {
            image_size: 32,
            load_size: 37,
            channels: 1,
            ..ImageOptions::default()
        },
        ..ChexpertConfig::default()
    };
    let train = config.open(Split::Train).unwrap();
    assert_eq!(train.len(), 30, "every training image is frontal AP/PA");
    for record in train.records() {
        assert!(
            record.caption.starts_with("findings: "),
            "{}",
            record.caption
        );
        assert!(
            !record.caption.contains("this is a chest x ray"),
            "{}",
            record.caption
        );
        assert!(record.labels.iter().sum::<f32>() >= 1.0);
        // Each labelled finding's impression names it (lower-cased, possibly shortened).
        let impression = record.caption.split("impression:").nth(1).unwrap();
        for (k, name) in FINDINGS.iter().enumerate() {
            if record.labels[k] == 1.0 {
                let word = name
                    .to_lowercase()
                    .split(' ')
                    .next_back()
                    .unwrap()
                    .to_string();
                let stem = if word == "cardiomegaly" {
                    "cardiomegaly|enlarged heart"
                } else {
                    &word
                };
                assert!(
                    stem.split('|').any(|s| impression.contains(s)),
                    "{name} not in `{impression}`"
                );
            }
        }
    }
    assert!(
        train
            .records()
            .iter()
            .any(|r| r.caption.contains("no ") || r.caption.contains("normal")),
        "some report negates an absent finding"
    );
    let sample = train.get(0).unwrap();
    assert_eq!(sample.image.len(), 32 * 32);
    let test = config.open(Split::Test).unwrap();
    assert_eq!(test.len(), 20);
    assert_eq!(test.label_names(), FIVE_CLASSES.map(String::from).to_vec());
    assert_eq!(config.open(Split::Valid).unwrap().len(), 5);
    // Same seed, same bytes.
    let again = out.with_extension("again");
    let _ = std::fs::remove_dir_all(&again);
    let tree2 = write_chexpert_tree(&again, &options, &|_, _| {}).unwrap();
    assert_eq!(
        std::fs::read_to_string(&tree.test_csv).unwrap(),
        std::fs::read_to_string(&tree2.test_csv).unwrap()
    );
    let png = "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.png";
    assert_eq!(
        std::fs::read(out.join(png)).unwrap(),
        std::fs::read(again.join(png)).unwrap()
    );
}
