//! The `rsna`, `embed` and `image-text-csv` loaders on fixture trees in their real formats.

mod common;

use std::collections::BTreeSet;

use cleft_core::data::ImageTextDataset;
use cleft_core::registry::Split;
use cleft_datasets::{
    BIRADS_CLASSES, DENSITY_CLASSES, EmbedConfig, EmbedTask, ImageTextCsvConfig, OnBadSample,
    RSNA_CLASSES, RsnaConfig, SplitFractions,
};
use cleft_imaging::ImageOptions;
use common::{temp_dir, write_dicom, write_png};

fn small_image() -> ImageOptions {
    ImageOptions {
        image_size: 16,
        load_size: 20,
        channels: 1,
        ..ImageOptions::default()
    }
}

#[test]
fn rsna_has_one_sample_per_patient_with_any_box_positive_and_disjoint_splits() {
    let root = temp_dir("rsna");
    let images = root.join("stage_2_train_images");
    let csv = root.join("stage_2_train_labels.csv");
    let mut text = String::from("patientId,x,y,width,height,Target\n");
    // p0: two boxes (pneumonia), p1..p5: no box; p6: one box.
    text.push_str("p0,264.0,152.0,213.0,379.0,1\np0,562.0,152.0,256.0,453.0,1\n");
    for i in 1..6 {
        text.push_str(&format!("p{i},,,,,0\n"));
    }
    text.push_str("p6,100.0,100.0,50.0,50.0,1\n");
    std::fs::write(&csv, &text).unwrap();
    for i in 0..7 {
        write_dicom(&images.join(format!("p{i}.dcm")), 24, 3000);
    }
    let config = RsnaConfig {
        csv: csv.clone(),
        image_dir: images.clone(),
        split: SplitFractions {
            train: 0.5,
            valid: 0.25,
            test: 0.25,
            seed: 3,
        },
        image: small_image(),
        on_bad_sample: OnBadSample::Fail,
    };
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for split in [Split::Train, Split::Valid, Split::Test] {
        let data = config.open(split).unwrap();
        assert_eq!(data.label_names(), RSNA_CLASSES.map(String::from).to_vec());
        for record in data.records() {
            let id = record
                .image
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let pneumonia = id == "p0" || id == "p6";
            assert_eq!(
                record.labels,
                if pneumonia { [0.0, 1.0] } else { [1.0, 0.0] },
                "{id}"
            );
            assert!(seen.insert(id), "a patient is in two splits");
            total += 1;
        }
        let sample = data.get(0).unwrap();
        assert_eq!(sample.image.len(), 16 * 16);
    }
    assert_eq!(total, 7);
    // A Target that is not 0/1 is named with its line.
    std::fs::write(&csv, text.replacen("p1,,,,,0", "p1,,,,,yes", 1)).unwrap();
    let error = config.open(Split::Train).unwrap_err().to_string();
    assert!(
        error.contains("stage_2_train_labels.csv:4") && error.contains("Target"),
        "{error}"
    );
    // A truncated DICOM: named at read time.
    std::fs::write(&csv, &text).unwrap();
    for i in 0..7 {
        let path = images.join(format!("p{i}.dcm"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    }
    let data = config.open(Split::Train).unwrap();
    let error = data.get(0).unwrap_err().to_string();
    assert!(error.contains(".dcm"), "{error}");
}

#[test]
fn embed_joins_metadata_and_clinical_tables_by_accession_and_side() {
    let root = temp_dir("embed");
    let metadata = root.join("EMBED_OpenData_metadata.csv");
    let clinical = root.join("EMBED_OpenData_clinical.csv");
    std::fs::write(
        &metadata,
        "empi_anon,acc_anon,anon_dicom_path,ImageLateralityFinal,FinalImageType\n\
         1,100,/mnt/NAS/images/1/a.dcm,L,2D\n\
         1,100,/mnt/NAS/images/1/b.dcm,R,2D\n\
         1,100,/mnt/NAS/images/1/c.dcm,L,cview\n\
         2,200,/mnt/NAS/images/2/d.dcm,L,2D\n\
         3,300,/mnt/NAS/images/3/e.dcm,R,2D\n",
    )
    .unwrap();
    std::fs::write(
        &clinical,
        "empi_anon,acc_anon,side,asses,tissueden\n\
         1,100,L,S,2.0\n\
         1,100,R,N,2.0\n\
         2,200,B,B,4.0\n\
         3,300,R,X,5.0\n",
    )
    .unwrap();
    for name in ["1/a", "1/b", "1/c", "2/d", "3/e"] {
        write_dicom(&root.join(format!("images/{name}.dcm")), 24, 2000);
    }
    let config = EmbedConfig {
        metadata_csv: metadata.clone(),
        clinical_csv: clinical.clone(),
        image_root: root.clone(),
        strip_prefix: "/mnt/NAS".into(),
        task: EmbedTask::Birads,
        split: SplitFractions {
            train: 1.0,
            valid: 0.0,
            test: 0.0,
            seed: 1,
        },
        image: small_image(),
        on_bad_sample: OnBadSample::Fail,
    };
    let train = config.open(Split::Train).unwrap();
    let classes: Vec<(String, usize)> = train
        .records()
        .iter()
        .map(|r| {
            (
                r.image.file_stem().unwrap().to_str().unwrap().to_string(),
                r.labels.iter().position(|&l| l == 1.0).unwrap(),
            )
        })
        .collect();
    // c is a C-view (not 2-D); e has BI-RADS X (no class); d takes the bilateral finding.
    assert_eq!(
        classes,
        [
            ("a".to_string(), 4),
            ("b".to_string(), 1),
            ("d".to_string(), 2)
        ]
    );
    assert_eq!(train.label_names().len(), 7);
    assert!(train.records()[0].caption.contains(BIRADS_CLASSES[4]));
    assert_eq!(train.get(0).unwrap().image.len(), 256);

    let density = EmbedConfig {
        task: EmbedTask::Density,
        ..config.clone()
    }
    .open(Split::Train)
    .unwrap();
    let labels: Vec<usize> = density
        .records()
        .iter()
        .map(|r| r.labels.iter().position(|&l| l == 1.0).unwrap())
        .collect();
    assert_eq!(labels, [1, 1, 3]);
    assert_eq!(density.label_names()[3], DENSITY_CLASSES[3]);

    // Two different BI-RADS on one side: a named bad sample.
    std::fs::write(
        &clinical,
        "empi_anon,acc_anon,side,asses,tissueden\n1,100,L,S,2\n1,100,L,B,2\n",
    )
    .unwrap();
    let error = config.open(Split::Train).unwrap_err().to_string();
    assert!(
        error.contains("metadata.csv:2") && error.contains("conflicting"),
        "{error}"
    );
}

#[test]
fn image_text_csv_reads_paths_texts_and_label_columns() {
    let root = temp_dir("pairs");
    write_png(&root.join("img/a.png"), 20, 220);
    write_png(&root.join("img/b.png"), 20, 90);
    let csv = root.join("pairs.csv");
    std::fs::write(
        &csv,
        "path,text,effusion,edema\nimg/a.png,\"Small effusion, no edema.\",1,0\nimg/b.png,Edema.,0,1\n",
    )
    .unwrap();
    let config = ImageTextCsvConfig {
        train_csv: csv.clone(),
        test_csv: Some(csv.clone()),
        image_root: root.clone(),
        labels: vec!["effusion".into(), "edema".into()],
        image: small_image(),
        ..ImageTextCsvConfig::default()
    };
    let data = config.open(Split::Test).unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data.records()[0].caption, "small effusion, no edema.");
    assert_eq!(data.labels(1).unwrap(), [0.0, 1.0]);
    assert_eq!(data.label_names(), ["effusion", "edema"]);
    assert!(
        config
            .open(Split::Valid)
            .unwrap_err()
            .to_string()
            .contains("valid_csv")
    );
    // A missing text column is named.
    let error = ImageTextCsvConfig {
        text_column: "report".into(),
        ..config
    }
    .open(Split::Train)
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("pairs.csv") && error.contains("no column `report`"),
        "{error}"
    );
}
