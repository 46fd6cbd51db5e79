//! The RG1 chest radiograph (pydicom-data) in four encodings against pydicom's decode
//! (`fixtures/imaging/rg1_golden.json`, written by `tools/golden_dicom.py`).
//!
//! RG1_UNCR is the lossless original and RG1_J2KR it as JPEG 2000 reversible; RG1_J2KI is it as
//! JPEG 2000 irreversible (10:1) and RG1_UNCI is pydicom-data's decode of RG1_J2KI stored
//! uncompressed. All four are 1955x1841, 15 bits stored, MONOCHROME1.

use std::path::PathBuf;

use cleft_imaging::{DicomFrame, DicomOptions, read_dicom_frame, read_grey};
use cleft_testing::assets::require_asset;
use serde_json::Value;

fn golden() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/imaging/rg1_golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("rg1_golden.json parses")
}

fn frame(name: &str) -> DicomFrame {
    let path = require_asset(&format!("dicom/{name}.dcm"));
    read_dicom_frame(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn int(value: &Value) -> i64 {
    value.as_i64().expect("integer")
}

/// Every attribute and statistic pydicom reports, for each file.
fn check_against_golden(name: &str, frame: &DicomFrame, golden: &Value) {
    let g = &golden["files"][name];
    assert_eq!(frame.rows as i64, int(&g["rows"]), "{name} rows");
    assert_eq!(frame.columns as i64, int(&g["columns"]), "{name} columns");
    assert_eq!(
        i64::from(frame.bits_stored),
        int(&g["bits_stored"]),
        "{name} bits stored"
    );
    assert_eq!(
        i64::from(frame.bits_allocated),
        int(&g["bits_allocated"]),
        "{name}"
    );
    assert_eq!(
        frame.photometric_interpretation, g["photometric_interpretation"],
        "{name}"
    );
    assert_eq!(
        frame.transfer_syntax, g["transfer_syntax"],
        "{name} transfer syntax"
    );
    assert_eq!(
        frame.rescale_slope,
        g["rescale_slope"].as_f64().unwrap(),
        "{name}"
    );
    assert_eq!(
        frame.rescale_intercept,
        g["rescale_intercept"].as_f64().unwrap(),
        "{name}"
    );
    let sum: i64 = frame.stored.iter().map(|&v| i64::from(v)).sum();
    assert_eq!(sum, int(&g["raw_sum"]), "{name} raw pixel sum");
    assert_eq!(
        i64::from(*frame.stored.iter().min().unwrap()),
        int(&g["raw_min"]),
        "{name} min"
    );
    assert_eq!(
        i64::from(*frame.stored.iter().max().unwrap()),
        int(&g["raw_max"]),
        "{name} max"
    );
    let coords = g["sample_coords"].as_array().unwrap();
    let values = g["sample_values"].as_array().unwrap();
    for (coord, value) in coords.iter().zip(values) {
        let (row, column) = (int(&coord[0]) as usize, int(&coord[1]) as usize);
        assert_eq!(
            i64::from(frame.stored[row * frame.columns + column]),
            int(value),
            "{name} pixel ({row}, {column})"
        );
    }
}

/// Mean and max absolute difference of two decodes.
fn differences(a: &DicomFrame, b: &DicomFrame) -> (f64, i32) {
    let total: f64 = a
        .stored
        .iter()
        .zip(&b.stored)
        .map(|(x, y)| f64::from((x - y).abs()))
        .sum();
    let max = a
        .stored
        .iter()
        .zip(&b.stored)
        .map(|(x, y)| (x - y).abs())
        .max()
        .unwrap();
    (total / a.stored.len() as f64, max)
}

#[test]
fn uncompressed_and_jpeg2000_lossless_decode_to_pydicoms_pixels() {
    let golden = golden();
    let uncr = frame("RG1_UNCR");
    let j2kr = frame("RG1_J2KR");
    let unci = frame("RG1_UNCI");
    check_against_golden("RG1_UNCR", &uncr, &golden);
    check_against_golden("RG1_J2KR", &j2kr, &golden);
    check_against_golden("RG1_UNCI", &unci, &golden);
    assert!(
        uncr.stored == j2kr.stored,
        "JPEG 2000 lossless differs from the uncompressed file"
    );
    let options = DicomOptions::default();
    assert_eq!(uncr.to_grey(&options), j2kr.to_grey(&options));
}

/// The lossy JPEG 2000 decode (the pure-Rust openjp2 port of OpenJPEG) against pydicom's
/// (pylibjpeg-openjpeg, OpenJPEG 2.5), which RG1_UNCI stores: the same to within 1 of the
/// 15-bit range (0.003 %) per pixel and a mean absolute difference below 0.01. Its loss against
/// the lossless original (mean 50.1, max 403 in pydicom) is reproduced to within 1 %.
#[test]
fn jpeg2000_lossy_decodes_close_to_pydicom() {
    let golden = golden();
    let j2ki = frame("RG1_J2KI");
    let unci = frame("RG1_UNCI");
    let uncr = frame("RG1_UNCR");
    assert_eq!((j2ki.rows, j2ki.columns), (unci.rows, unci.columns));
    let (mean, max) = differences(&j2ki, &unci);
    eprintln!("RG1_J2KI vs pydicom's decode: mean |diff| {mean}, max |diff| {max}");
    assert!(mean < 0.01 && max <= 1, "mean {mean}, max {max}");
    let (loss_mean, loss_max) = differences(&j2ki, &uncr);
    let reference = &golden["differences"]["RG1_J2KI vs RG1_UNCR"];
    let (ref_mean, ref_max) = (
        reference["mean_abs_diff"].as_f64().unwrap(),
        int(&reference["max_abs_diff"]),
    );
    assert!(
        (loss_mean - ref_mean).abs() <= 0.01 * ref_mean,
        "loss mean {loss_mean} vs {ref_mean}"
    );
    assert!(
        (i64::from(loss_max) - ref_max).abs() <= ref_max / 100,
        "loss max {loss_max} vs {ref_max}"
    );
}

/// MONOCHROME1 is inverted and min-max scaled: grey = 255 - 255 (v - min) / (max - min); with
/// `voi_window` the file's window (center 15000, width 30000, LINEAR) applies instead.
#[test]
fn grey_of_the_radiograph_is_inverted_min_max_or_windowed() {
    let path = require_asset("dicom/RG1_UNCR.dcm");
    let frame = read_dicom_frame(&path).unwrap();
    let grey = read_grey(&path, &DicomOptions::default()).unwrap();
    assert_eq!((grey.width, grey.height), (frame.columns, frame.rows));
    let min = f64::from(*frame.stored.iter().min().unwrap());
    let max = f64::from(*frame.stored.iter().max().unwrap());
    for (&v, &g) in frame.stored.iter().zip(&grey.pixels).step_by(997) {
        let expected = 255.0 - 255.0 * (f64::from(v) - min) / (max - min);
        assert!(
            (f64::from(g) - expected).abs() < 1e-3,
            "stored {v}: grey {g}, expected {expected}"
        );
    }
    let window = frame.window.expect("RG1 has a VOI window");
    assert_eq!((window.center, window.width), (15000.0, 30000.0));
    let windowed = read_grey(&path, &DicomOptions { voi_window: true }).unwrap();
    for (&v, &g) in frame.stored.iter().zip(&windowed.pixels).step_by(997) {
        let linear = ((f64::from(v) - 14999.5) / 29999.0 + 0.5).clamp(0.0, 1.0) * 255.0;
        let expected = 255.0 - linear;
        assert!(
            (f64::from(g) - expected).abs() < 1e-3,
            "stored {v}: grey {g}, expected {expected}"
        );
    }
}

/// The whole pipeline on the real radiograph: `[3, 224, 224]`, within the normalised range, and
/// training reads differ from evaluation reads only through the augmentation.
#[test]
fn the_radiograph_loads_as_model_input() {
    let path = require_asset("dicom/RG1_J2KR.dcm");
    let options = cleft_imaging::ImageOptions::default();
    let started = std::time::Instant::now();
    let input = options.load(&path, None).unwrap();
    eprintln!("RG1_J2KR load (decode + prepare): {:?}", started.elapsed());
    assert_eq!(input.len(), 3 * 224 * 224);
    assert!(input.iter().all(|v| (-1.0..=1.0).contains(v)));
    let spread = input.iter().fold(f32::INFINITY, |a, &b| a.min(b))
        ..input.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    assert!(
        spread.end - spread.start > 1.5,
        "a radiograph spans most of the range: {spread:?}"
    );
    let augmented = options.load(&path, Some(1)).unwrap();
    assert_eq!(augmented.len(), input.len());
    assert_ne!(augmented, input);
}
