//! `cleft_core::inference::Predictor` inputs on a model built from the demo's config (weights
//! freshly initialised and saved, loaded with `Predictor::from_weights`): one image given as a
//! file, as its bytes and as decoded pixels gives the same embedding bit for bit (PNG and the
//! RG1 DICOM radiograph), a batch encoded in chunks equals the images one by one, and bad
//! bytes fail naming the image's index.

use std::path::{Path, PathBuf};

use cleft_core::config::Precision;
use cleft_core::data::ImageTextDataset;
use cleft_core::device::{default_device_name, open_device};
use cleft_core::inference::{ImageSource, Predictor};
use cleft_core::model::ClipModel;
use cleft_core::preprocess::{DecodedImage, Pixels};
use cleft_core::registry::Split;
use cleft_core::store::save_safetensors;
use cleft_core::{CleftError, ExperimentConfig};
use cleft_imaging::{DicomOptions, read_dicom_frame};
use cleft_testing::assets::require_asset;

const TINY: &str = include_str!("../../configs/tiny/cleft.toml");

/// The demo's model with seeded initial weights, its `eval.batch_size` set to `batch_size`.
fn predictor(dir: &Path, batch_size: usize) -> Predictor {
    let registry = cleft_builtins::registry();
    let text = TINY.replace("batch_size = 100", &format!("batch_size = {batch_size}"));
    let config = ExperimentConfig::parse(&text, "tiny.toml", &registry).unwrap();
    assert_eq!(config.eval.batch_size, batch_size);
    let device = open_device(default_device_name(), Precision::F32).unwrap();
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        let model = ClipModel::build_seeded(&config, &device, 1).unwrap();
        save_safetensors(&model, &weights).unwrap();
    }
    Predictor::from_weights(config, &weights, &device).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-inference-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn embedding(predictor: &Predictor, image: ImageSource<'_>) -> Vec<f32> {
    predictor
        .embed_images(&[image])
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Embeds `file`, its bytes and `decoded` (each alone) and checks all three bit-equal, and
/// their model inputs too.
fn assert_same_three_ways(predictor: &Predictor, file: &Path, decoded: &DecodedImage) {
    let bytes = std::fs::read(file).unwrap();
    let sources = [
        ImageSource::File(file),
        ImageSource::Encoded(&bytes),
        ImageSource::Decoded(decoded),
    ];
    let inputs: Vec<Vec<f32>> = sources
        .iter()
        .map(|&s| predictor.prepare(s).unwrap())
        .collect();
    assert_eq!(inputs[0], inputs[1], "{}: file vs bytes", file.display());
    assert_eq!(inputs[0], inputs[2], "{}: file vs decoded", file.display());
    let embeddings: Vec<Vec<u32>> = sources
        .iter()
        .map(|&s| {
            embedding(predictor, s)
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect();
    assert_eq!(embeddings[0], embeddings[1], "{}", file.display());
    assert_eq!(embeddings[0], embeddings[2], "{}", file.display());
}

/// A synthetic test radiograph (grey 0..1 as the generator makes it) as 8-bit grey samples.
fn synthetic_grey8(index: usize) -> (usize, Vec<u8>) {
    let split = cleft_synthetic::SyntheticCxr::new(Default::default(), Split::Test);
    let [_, side, _] = split.image_shape();
    let image = split.get(index).unwrap().image;
    let grey = image
        .iter()
        .map(|v| ((v * 0.5 + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    (side, grey)
}

#[test]
fn a_png_as_file_bytes_and_pixels_embeds_bit_identically() {
    let dir = temp_dir("png");
    let predictor = predictor(&dir, 100);
    let (side, grey) = synthetic_grey8(3);
    let side32 = side as u32;
    let path = dir.join("grey.png");
    image::GrayImage::from_raw(side32, side32, grey.clone())
        .unwrap()
        .save(&path)
        .unwrap();
    let decoded = DecodedImage {
        width: side,
        height: side,
        pixels: Pixels::Grey8(grey.clone()),
    };
    assert_same_three_ways(&predictor, &path, &decoded);

    // Colour: the pixels go through the same Rec. 601 luminance as the decoded file.
    let rgb: Vec<u8> = grey
        .iter()
        .enumerate()
        .flat_map(|(i, &v)| [v, v.saturating_add((i % 7) as u8), v / 2])
        .collect();
    let path = dir.join("rgb.png");
    image::RgbImage::from_raw(side32, side32, rgb.clone())
        .unwrap()
        .save(&path)
        .unwrap();
    let decoded = DecodedImage {
        width: side,
        height: side,
        pixels: Pixels::Rgb8(rgb),
    };
    assert_same_three_ways(&predictor, &path, &decoded);
}

#[test]
fn a_dicom_as_file_bytes_and_pixels_embeds_bit_identically() {
    let dir = temp_dir("dicom");
    let predictor = predictor(&dir, 100);
    for name in ["RG1_UNCR", "RG1_J2KR"] {
        let path = require_asset(&format!("dicom/{name}.dcm"));
        // What an application that decodes DICOM itself hands over: grey 0..=255.
        let grey = read_dicom_frame(&path)
            .unwrap()
            .to_grey(&DicomOptions::default());
        let decoded = DecodedImage {
            width: grey.width,
            height: grey.height,
            pixels: Pixels::Grey(grey.pixels),
        };
        assert_same_three_ways(&predictor, &path, &decoded);
    }
}

/// Largest absolute difference between a batched and a one-by-one embedding component. Noise
/// model: a batch changes only the summation order of the matrix products (blocking), each
/// adding a rounding error of about `√K · u` relative (`u = 2⁻²⁴`, random-walk model) with inner
/// size `K` ≤ 384 (the tiny ViT's MLP, 4 × 96); on the path to the embedding lie 3 layers × 4
/// products plus the projection, activations are LayerNorm-scaled (order 1) and the embeddings
/// L2-normalised (components in −1..1): `13 · √384 · u` ≈ 1.5e-5.
const BATCH_TOLERANCE: f32 = 13.0 * 19.6 * (f32::EPSILON / 2.0);

#[test]
fn a_batch_in_chunks_equals_the_images_one_by_one() {
    let dir = temp_dir("batch");
    // 7 images in chunks of 3: two full chunks and one of 1.
    let predictor = predictor(&dir, 3);
    let pngs: Vec<Vec<u8>> = (0..7)
        .map(|i| {
            let (side, grey) = synthetic_grey8(i);
            let mut png = Vec::new();
            image::GrayImage::from_raw(side as u32, side as u32, grey)
                .unwrap()
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        })
        .collect();
    let sources: Vec<ImageSource<'_>> = pngs.iter().map(|b| ImageSource::Encoded(b)).collect();
    let batch = predictor.embed_images(&sources).unwrap();
    let [rows, dim] = batch.dims();
    assert_eq!(rows, 7);
    let batch = batch.into_data().try_to_vec::<f32>().unwrap();
    let mut worst = 0.0f32;
    for (i, &source) in sources.iter().enumerate() {
        let alone = embedding(&predictor, source);
        for (a, b) in batch[i * dim..(i + 1) * dim].iter().zip(&alone) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= BATCH_TOLERANCE, "batch vs one by one: {worst}");

    let classes = ["Edema", "Atelectasis"].map(String::from);
    let scores = predictor.classify(&sources, &classes).unwrap();
    assert_eq!(scores.len(), 7);
    assert!(scores.iter().all(|row| row.len() == 2));
}

#[test]
fn bad_bytes_fail_naming_the_image_index() {
    let dir = temp_dir("bad");
    let predictor = predictor(&dir, 3);
    let (side, grey) = synthetic_grey8(0);
    let good = DecodedImage {
        width: side,
        height: side,
        pixels: Pixels::Grey8(grey),
    };
    let truncated_png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".as_slice();
    for (bad, what) in [
        (ImageSource::Encoded(b"not an image at all"), "garbage"),
        (ImageSource::Encoded(truncated_png), "truncated PNG"),
    ] {
        // Index 4 sits in the second chunk of 3.
        let sources = [ImageSource::Decoded(&good); 4]
            .into_iter()
            .chain([bad])
            .collect::<Vec<_>>();
        let error = predictor.embed_images(&sources).unwrap_err();
        assert!(
            matches!(error, CleftError::Image { index: 4, .. }),
            "{what}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.starts_with("image 4: "), "{what}: {message}");
        assert!(message.contains("decode"), "{what}: {message}");
    }
    let missing = dir.join("missing.png");
    let error = predictor
        .classify(
            &[ImageSource::Decoded(&good), ImageSource::File(&missing)],
            &["Edema".to_string()],
        )
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("image 1: ") && message.contains("missing.png"),
        "{message}"
    );
    let wrong = DecodedImage {
        width: side,
        height: side,
        pixels: Pixels::Grey8(vec![0; 5]),
    };
    let message = predictor
        .embed_images(&[ImageSource::Decoded(&wrong)])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("image 0: ") && message.contains("holds 5 samples"),
        "{message}"
    );
}
