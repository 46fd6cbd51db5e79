//! CLEFT's pipeline: Otsu, crop, shapes, channels, normalisation, augmentation, validation.

use cleft_imaging::{GreyImage, ImageOptions, otsu_threshold};

/// A black `[height, width]` image with the `[x0, x1) × [y0, y1)` rectangle at `value`.
fn rectangle(
    width: usize,
    height: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    value: f32,
) -> GreyImage {
    let pixels = (0..height)
        .flat_map(|y| {
            (0..width).map(move |x| {
                if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                    value
                } else {
                    0.0
                }
            })
        })
        .collect();
    GreyImage {
        width,
        height,
        pixels,
    }
}

fn no_augment() -> ImageOptions {
    let mut options = ImageOptions::default();
    options.augment.enabled = false;
    options
}

#[test]
fn otsu_threshold_of_a_bimodal_histogram_lies_between_the_modes() {
    // two noisy modes around 60 and 190 (deterministic spread of ±20)
    let pixels: Vec<f32> = (0..4000)
        .map(|i| {
            let spread = ((i * 37) % 41) as f32 - 20.0;
            if i % 3 == 0 {
                190.0 + spread
            } else {
                60.0 + spread
            }
        })
        .collect();
    let t = otsu_threshold(&pixels);
    assert!(t > 80.0 && t < 170.0, "threshold {t}");
    // two spikes: every threshold between separates them; the middle is chosen
    let spikes: Vec<f32> = (0..100)
        .map(|i| if i < 30 { 50.0 } else { 200.0 })
        .collect();
    assert_eq!(otsu_threshold(&spikes), 124.0);
    assert_eq!(otsu_threshold(&[7.0; 10]), 0.0);
}

/// A bright 64x32 rectangle at (100, 40) in a black 256x128 image: after fitting to 256 and
/// padding (centred, 64 rows above), the crop is exactly the rectangle, so with
/// `image_size = load_size` the output is the rectangle stretched: all bright.
#[test]
fn crop_finds_a_bright_rectangle_on_black() {
    let image = rectangle(256, 128, (100, 40, 164, 72), 200.0);
    let mut options = no_augment();
    (options.image_size, options.load_size, options.channels) = (32, 256, 1);
    let out = options.prepare(&image, None);
    let bright = (200.0 / 255.0 - 0.5) / 0.5;
    assert_eq!(out.len(), 32 * 32);
    for v in &out {
        assert!(
            (v - bright).abs() < 1e-4,
            "{v} vs {bright}: crop is not the rectangle"
        );
    }
    options.otsu_crop = false;
    let uncropped = options.prepare(&image, None);
    assert!(
        uncropped.iter().any(|&v| v <= -0.99),
        "without the crop the black border stays"
    );
}

#[test]
fn empty_foreground_skips_the_crop() {
    let image = GreyImage {
        width: 40,
        height: 20,
        pixels: vec![0.0; 800],
    };
    let mut options = no_augment();
    (options.image_size, options.load_size) = (16, 32);
    assert!(options.prepare(&image, None).iter().all(|&v| v == -1.0));
}

#[test]
fn output_is_channels_by_side_squared_with_grey_repeated_exactly() {
    let pixels = (0..300 * 200).map(|i| (i % 251) as f32).collect();
    let image = GreyImage {
        width: 300,
        height: 200,
        pixels,
    };
    let options = ImageOptions::default();
    let out = options.prepare(&image, Some(3));
    let plane = 224 * 224;
    assert_eq!(out.len(), 3 * plane);
    assert_eq!(out[..plane], out[plane..2 * plane]);
    assert_eq!(out[..plane], out[2 * plane..]);
    let single = ImageOptions {
        channels: 1,
        ..options
    }
    .prepare(&image, Some(3));
    assert_eq!(single[..], out[..plane]);
}

#[test]
fn normalisation_maps_black_to_minus_one_and_white_to_one() {
    let mut options = no_augment();
    options.otsu_crop = false;
    (options.image_size, options.load_size) = (8, 8);
    for (value, expected) in [(0.0, -1.0), (255.0, 1.0), (127.5, 0.0)] {
        let image = GreyImage {
            width: 8,
            height: 8,
            pixels: vec![value; 64],
        };
        for v in options.prepare(&image, None) {
            assert!(
                (v - expected).abs() < 1e-6,
                "{value} → {v}, expected {expected}"
            );
        }
    }
}

fn textured() -> GreyImage {
    let pixels = (0..96 * 80).map(|i| ((i * 7919) % 256) as f32).collect();
    GreyImage {
        width: 96,
        height: 80,
        pixels,
    }
}

#[test]
fn augmentation_is_deterministic_per_seed() {
    let options = ImageOptions {
        image_size: 48,
        load_size: 64,
        ..ImageOptions::default()
    };
    let image = textured();
    assert_eq!(
        options.prepare(&image, Some(11)),
        options.prepare(&image, Some(11))
    );
    let different = (12..20)
        .filter(|&seed| options.prepare(&image, Some(seed)) != options.prepare(&image, Some(11)));
    assert_eq!(different.count(), 8, "other seeds must give other images");
    assert_ne!(
        options.prepare(&image, Some(11)),
        options.prepare(&image, None)
    );
}

#[test]
fn without_augmentation_or_seed_prepare_is_deterministic_and_unaugmented() {
    let options = ImageOptions {
        image_size: 48,
        load_size: 64,
        ..ImageOptions::default()
    };
    let image = textured();
    let plain = options.prepare(&image, None);
    let disabled = ImageOptions {
        augment: cleft_imaging::AugmentOptions {
            enabled: false,
            ..options.augment.clone()
        },
        ..options.clone()
    };
    assert_eq!(disabled.prepare(&image, Some(5)), plain);
    assert_eq!(disabled.prepare(&image, Some(6)), plain);
    // every augmentation at its identity setting: the output equals the unaugmented one
    let mut identity = options.clone();
    let a = &mut identity.augment;
    (
        a.jitter_p,
        a.blur_p,
        a.flip_p,
        a.degrees,
        a.translate,
        a.scale,
    ) = (0.0, 0.0, 0.0, 0.0, 0.0, [1.0, 1.0]);
    assert_eq!(identity.prepare(&image, Some(5)), plain);
}

#[test]
fn flip_with_probability_one_mirrors_exactly() {
    let mut options = ImageOptions {
        image_size: 48,
        load_size: 64,
        channels: 1,
        ..ImageOptions::default()
    };
    let a = &mut options.augment;
    (
        a.jitter_p,
        a.blur_p,
        a.flip_p,
        a.degrees,
        a.translate,
        a.scale,
    ) = (0.0, 0.0, 1.0, 0.0, 0.0, [1.0, 1.0]);
    let image = textured();
    let flipped = options.prepare(&image, Some(9));
    let plain = options.prepare(&image, None);
    for (row_flipped, row) in flipped.chunks(48).zip(plain.chunks(48)) {
        let mirrored: Vec<f32> = row.iter().rev().copied().collect();
        assert_eq!(row_flipped, &mirrored[..]);
    }
}

/// A change to the default options.
type Change = fn(&mut ImageOptions);

#[test]
fn validate_refuses_bad_values_naming_the_key() {
    ImageOptions::default().validate("data.image").unwrap();
    let cases: Vec<(Change, &str)> = vec![
        (|o| o.channels = 2, "data.image.channels = 2 must be 1 or 3"),
        (|o| o.image_size = 0, "data.image.image_size = 0"),
        (
            |o| o.load_size = 100,
            "data.image.load_size = 100 must be at least image_size = 224",
        ),
        (|o| o.std = 0.0, "data.image.std = 0"),
        (
            |o| o.augment.flip_p = 1.5,
            "data.image.augment.flip_p = 1.5 must be in [0, 1]",
        ),
        (
            |o| o.augment.jitter_p = -0.1,
            "data.image.augment.jitter_p = -0.1",
        ),
        (|o| o.augment.blur_p = 2.0, "data.image.augment.blur_p = 2"),
        (
            |o| o.augment.blur_kernel = 6,
            "data.image.augment.blur_kernel = 6 must be odd",
        ),
        (
            |o| o.augment.blur_sigma = [2.0, 1.0],
            "data.image.augment.blur_sigma = [2, 1]",
        ),
        (
            |o| o.augment.scale = [0.0, 1.0],
            "data.image.augment.scale = [0, 1]",
        ),
        (
            |o| o.augment.degrees = -5.0,
            "data.image.augment.degrees = -5",
        ),
        (
            |o| o.augment.translate = 1.5,
            "data.image.augment.translate = 1.5",
        ),
    ];
    for (change, expected) in cases {
        let mut options = ImageOptions::default();
        change(&mut options);
        let error = options
            .validate("data.image")
            .expect_err(expected)
            .to_string();
        assert!(
            error.starts_with(expected),
            "`{error}` should start with `{expected}`"
        );
    }
}

#[test]
fn options_deserialise_with_defaults_and_refuse_unknown_keys() {
    let options: ImageOptions = serde_json::from_str(
        r#"{"channels": 1, "augment": {"flip_p": 0.0}, "dicom": {"voi_window": true}}"#,
    )
    .unwrap();
    assert_eq!(options.channels, 1);
    assert_eq!(options.augment.flip_p, 0.0);
    assert_eq!(options.augment.degrees, 10.0);
    assert!(options.dicom.voi_window);
    assert_eq!(options.image_size, 224);
    let error = serde_json::from_str::<ImageOptions>(r#"{"chanels": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("chanels"), "{error}");
}
