//! The `chexpert` loader on a fixture tree in CheXpert's shipped format.

mod common;

use std::path::{Path, PathBuf};

use cleft_core::data::ImageTextDataset;
use cleft_core::registry::{DatasetConfig, Split};
use cleft_datasets::{
    CHEXPERT_FINDINGS, ChexpertConfig, FIVE_CLASSES, FiveByTwoHundred, OnBadSample, Uncertain,
};
use cleft_imaging::ImageOptions;
use common::{CHEXPERT_HEADER, chexpert_row, temp_dir, write_png};

/// Writes the tree; returns (root, csv). Rows:
/// line 2: p1 frontal AP, Cardiomegaly 1, Edema -1, Atelectasis 1 (two of the five classes)
/// line 3: p2 lateral, Cardiomegaly 1 (dropped: lateral)
/// line 4: p3 frontal PA, Lung Opacity 1 and Support Devices 1
/// line 5: p4 frontal, empty AP/PA (dropped: view)
/// then 3 single-finding frontal candidates per five-class (15 rows, lines 6..20).
fn tree(name: &str) -> (PathBuf, PathBuf) {
    let root = temp_dir(name);
    let mut lines = vec![CHEXPERT_HEADER.to_string()];
    let mut add = |patient: usize, frontal: bool, view: &str, findings: &[(&str, &str)]| {
        let path = format!(
            "CheXpert-v1.0-small/train/patient{patient:05}/study1/view1_{}.jpg",
            if frontal { "frontal" } else { "lateral" }
        );
        write_png(&root.join(&path), 24, 200);
        lines.push(chexpert_row(&path, frontal, view, findings));
    };
    add(
        1,
        true,
        "AP",
        &[
            ("Cardiomegaly", "1.0"),
            ("Edema", "-1.0"),
            ("Atelectasis", "1.0"),
        ],
    );
    add(2, false, "", &[("Cardiomegaly", "1.0")]);
    add(
        3,
        true,
        "PA",
        &[("Lung Opacity", "1.0"), ("Support Devices", "1.0")],
    );
    add(4, true, "", &[("Edema", "1.0")]);
    for (k, class) in FIVE_CLASSES.iter().enumerate() {
        for i in 0..3 {
            // A second finding outside the five does not disqualify.
            add(
                10 + 3 * k + i,
                true,
                "PA",
                &[(class, "1.0"), ("Fracture", "0.0")],
            );
        }
    }
    let csv = root.join("CheXpert-v1.0-small/train.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    (root, csv)
}

fn small_image() -> ImageOptions {
    ImageOptions {
        image_size: 16,
        load_size: 20,
        channels: 3,
        ..ImageOptions::default()
    }
}

fn config(root: &Path, csv: &Path) -> ChexpertConfig {
    ChexpertConfig {
        csv: csv.to_path_buf(),
        image_root: root.to_path_buf(),
        test: FiveByTwoHundred {
            per_class: 2,
            seed: 42,
            csv: None,
        },
        image: small_image(),
        ..ChexpertConfig::default()
    }
}

fn positives(labels: &[f32], names: &[String]) -> Vec<String> {
    names
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l == 1.0)
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn train_split_keeps_frontal_ap_pa_and_synthesises_captions_in_upstream_order() {
    let (root, csv) = tree("train");
    let train = config(&root, &csv).open(Split::Train).unwrap();
    // 2 + 15 candidates - 10 drawn for the test split.
    assert_eq!(train.len(), 7);
    assert_eq!(train.label_names().len(), 14);
    let first = &train.records()[0];
    assert!(first.source.ends_with("train.csv:2"), "{}", first.source);
    assert_eq!(
        first.caption,
        "this is a chest x ray of a patient with cardiomegaly, atelectasis"
    );
    assert_eq!(
        positives(&first.labels, &train.label_names()),
        ["Cardiomegaly", "Atelectasis"]
    );
    let third = &train.records()[1];
    assert_eq!(
        third.caption,
        "this is a chest x ray of a patient with lung opacity, support devices"
    );
    let sample = train.get(0).unwrap();
    assert_eq!(sample.image.len(), 3 * 16 * 16);
    assert_eq!(train.image_shape(), [3, 16, 16]);
    // Grey repeated: the three channels are equal.
    assert_eq!(sample.image[..256], sample.image[256..512]);
}

#[test]
fn uncertain_counts_as_configured() {
    let (root, csv) = tree("uncertain");
    let config = ChexpertConfig {
        uncertain: Uncertain::Positive,
        ..config(&root, &csv)
    };
    let train = config.open(Split::Train).unwrap();
    assert_eq!(
        positives(&train.records()[0].labels, &train.label_names()),
        ["Cardiomegaly", "Edema", "Atelectasis"]
    );
    assert_eq!(
        train.records()[0].caption,
        "this is a chest x ray of a patient with cardiomegaly, edema, atelectasis"
    );
}

#[test]
fn five_by_two_hundred_is_balanced_single_label_seeded_recorded_and_excluded_from_training() {
    let (root, csv) = tree("five");
    let config = config(&root, &csv);
    let test = config.open(Split::Test).unwrap();
    assert_eq!(test.len(), 10);
    assert_eq!(test.label_names(), FIVE_CLASSES.map(String::from).to_vec());
    let mut counts = [0; 5];
    for record in test.records() {
        assert_eq!(record.labels.iter().sum::<f32>(), 1.0);
        counts[record.labels.iter().position(|&l| l == 1.0).unwrap()] += 1;
    }
    assert_eq!(counts, [2; 5]);
    let files = test.run_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "chexpert-5x200.csv");
    assert!(files[0].contents.contains("seed 42"));
    let selected: Vec<&str> = files[0]
        .contents
        .lines()
        .skip(2)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(selected.len(), 10);
    let train = config.open(Split::Train).unwrap();
    for record in train.records() {
        let path = record
            .image
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            !selected.contains(&path.as_str()),
            "{path} is in both splits"
        );
    }
    // Same seed, same draw; another seed draws another selection.
    assert_eq!(config.open(Split::Test).unwrap().records(), test.records());
    let other = ChexpertConfig {
        test: FiveByTwoHundred {
            seed: 7,
            ..config.test.clone()
        },
        ..config.clone()
    };
    assert_ne!(other.open(Split::Test).unwrap().records(), test.records());
    // Too few candidates for the asked size: refused, naming the class.
    let big = ChexpertConfig {
        test: FiveByTwoHundred {
            per_class: 4,
            ..config.test.clone()
        },
        ..config
    };
    let error = big.open(Split::Test).unwrap_err().to_string();
    assert!(
        error.contains("Atelectasis") && error.contains("needs 4"),
        "{error}"
    );
}

#[test]
fn report_column_becomes_the_lower_cased_ascii_caption() {
    let root = temp_dir("report");
    let path = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg";
    write_png(&root.join(path), 24, 180);
    let csv = root.join("train.csv");
    let row = chexpert_row(path, true, "PA", &[("Edema", "1.0")]);
    std::fs::write(
        &csv,
        format!(
            "{CHEXPERT_HEADER},Report\n{row},\"Findings: Pulmonary edema. No effusion — stable.\"\n"
        ),
    )
    .unwrap();
    let config = ChexpertConfig {
        report_column: Some("Report".into()),
        labels: vec!["Edema".into()],
        ..config(&root, &csv)
    };
    let train = config.open(Split::Valid).err(); // no valid_csv set
    assert!(train.unwrap().to_string().contains("valid_csv"));
    let config = ChexpertConfig {
        valid_csv: Some(csv.clone()),
        ..config
    };
    let valid = config.open(Split::Valid).unwrap();
    assert_eq!(
        valid.records()[0].caption,
        "findings: pulmonary edema. no effusion stable."
    );
    assert_eq!(valid.records()[0].labels, [1.0]);
}

#[test]
fn config_from_toml_through_the_registry_type_name() {
    let text = r#"
        type = "chexpert"
        csv = "x/train.csv"
        image_root = "x"
        uncertain = "positive"
        test = { per_class = 5, seed = 1 }
        [image]
        image_size = 32
        load_size = 37
        channels = 1
    "#;
    let config: Box<dyn DatasetConfig> = toml::from_str(text).unwrap();
    let shape = config.image_shape().unwrap().unwrap();
    assert_eq!((shape.channels.value, shape.size.value), (1, 32));
    let error = toml::from_str::<Box<dyn DatasetConfig>>(&text.replace("uncertain", "uncertainty"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("uncertainty"), "{error}");
    // Labels must be CheXpert columns.
    let bad = ChexpertConfig {
        labels: vec!["Pneumonitis".into()],
        ..ChexpertConfig::default()
    };
    let error = bad.open(Split::Train).unwrap_err().to_string();
    assert!(
        error.contains("Pneumonitis") && error.contains(CHEXPERT_FINDINGS[0]),
        "{error}"
    );
}

#[test]
fn bad_inputs_are_named_or_skipped_and_listed() {
    // A missing image file.
    let (root, csv) = tree("missing");
    std::fs::remove_file(
        root.join("CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg"),
    )
    .unwrap();
    let error = config(&root, &csv)
        .open(Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("train.csv:4")
            && error.contains("patient00003")
            && error.contains("does not exist"),
        "{error}"
    );
    let skip = ChexpertConfig {
        on_bad_sample: OnBadSample::Skip,
        ..config(&root, &csv)
    };
    let train = skip.open(Split::Train).unwrap();
    assert_eq!(train.len(), 6);
    let files = train.run_files();
    let skipped = files
        .iter()
        .find(|f| f.name.starts_with("skipped"))
        .unwrap();
    assert!(
        skipped.contents.contains("train.csv:4"),
        "{}",
        skipped.contents
    );

    // A malformed row (one field too many) and a label outside 1 / 0 / -1 / empty.
    let (root, csv) = tree("malformed");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("CheXpert-v1.0-small/x.jpg,Male,50,Frontal,AP,,,,,,,,,,,,,,,extra\n");
    std::fs::write(&csv, &text).unwrap();
    let error = config(&root, &csv)
        .open(Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("train.csv:21") && error.contains("20 fields"),
        "{error}"
    );
    let text = text
        .lines()
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
        .replacen(",AP,,,1.0,", ",AP,,,2.0,", 1);
    std::fs::write(&csv, text).unwrap();
    let error = config(&root, &csv)
        .open(Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("train.csv:2") && error.contains("`Cardiomegaly` = `2.0`"),
        "{error}"
    );

    // A missing column.
    let (root, csv) = tree("column");
    let text = std::fs::read_to_string(&csv)
        .unwrap()
        .replacen("AP/PA", "View", 1);
    std::fs::write(&csv, text).unwrap();
    let error = config(&root, &csv)
        .open(Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("train.csv") && error.contains("no column `AP/PA`"),
        "{error}"
    );

    // An unreadable image: named at read time, or replaced by the next sample and listed.
    let (root, csv) = tree("unreadable");
    let broken = root.join("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg");
    std::fs::write(&broken, b"not a jpeg at all").unwrap();
    let train = config(&root, &csv).open(Split::Train).unwrap();
    let error = train.get(0).unwrap_err().to_string();
    assert!(
        error.contains("patient00001") && error.contains("train.csv:2"),
        "{error}"
    );
    let train = ChexpertConfig {
        on_bad_sample: OnBadSample::Skip,
        ..config(&root, &csv)
    }
    .open(Split::Train)
    .unwrap();
    assert_eq!(train.get(0).unwrap().caption, train.records()[1].caption);
    assert!(
        train
            .run_files()
            .iter()
            .any(|f| f.contents.contains("train.csv:2"))
    );
}
