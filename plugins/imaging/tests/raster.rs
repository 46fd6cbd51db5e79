//! PNG and JPEG files written with `image`, read back as grey.

use cleft_imaging::{DicomOptions, ImageOptions, read_grey};
use image::{ImageBuffer, Luma, Rgb};

#[test]
fn eight_bit_png_is_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grey.png");
    let buffer = ImageBuffer::from_fn(5, 3, |x, y| Luma([(x * 50 + y) as u8]));
    buffer.save(&path).unwrap();
    let grey = read_grey(&path, &DicomOptions::default()).unwrap();
    assert_eq!((grey.width, grey.height), (5, 3));
    let expected: Vec<f32> = buffer.as_raw().iter().map(|&v| f32::from(v)).collect();
    assert_eq!(grey.pixels, expected);
}

#[test]
fn sixteen_bit_png_is_scaled_to_255() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.png");
    let values = [0u16, 257, 32768, 65535];
    ImageBuffer::from_fn(4, 1, |x, _| Luma([values[x as usize]]))
        .save(&path)
        .unwrap();
    let grey = read_grey(&path, &DicomOptions::default()).unwrap();
    let expected = [0.0, 1.0, 32768.0 * 255.0 / 65535.0, 255.0];
    for (g, e) in grey.pixels.iter().zip(expected) {
        assert!((g - e).abs() < 1e-3, "{:?}", grey.pixels);
    }
}

#[test]
fn colour_png_becomes_rec601_luminance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colour.png");
    let colours = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]];
    ImageBuffer::from_fn(4, 1, |x, _| Rgb(colours[x as usize]))
        .save(&path)
        .unwrap();
    let grey = read_grey(&path, &DicomOptions::default()).unwrap();
    let expected = [0.299 * 255.0, 0.587 * 255.0, 0.114 * 255.0, 90.0];
    for (g, e) in grey.pixels.iter().zip(expected) {
        assert!((g - e).abs() < 1e-3, "{:?}", grey.pixels);
    }
}

/// A smooth grey JPEG (quality 95) decodes within a few levels of what was written.
#[test]
fn jpeg_decodes_close_to_the_written_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grey.jpg");
    let buffer = ImageBuffer::from_fn(32, 16, |x, y| Luma([(x * 6 + y * 3) as u8]));
    let file = std::fs::File::create(&path).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 95)
        .encode_image(&buffer)
        .unwrap();
    let grey = read_grey(&path, &DicomOptions::default()).unwrap();
    assert_eq!((grey.width, grey.height), (32, 16));
    let error: f32 = grey
        .pixels
        .iter()
        .zip(buffer.as_raw())
        .map(|(g, &v)| (g - f32::from(v)).abs())
        .sum::<f32>()
        / 512.0;
    assert!(error < 2.0, "mean absolute error {error}");
}

#[test]
fn load_reads_and_prepares() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xray.png");
    ImageBuffer::from_fn(60, 40, |x, y| {
        Luma([if (10..50).contains(&x) && (5..35).contains(&y) {
            180u8
        } else {
            0
        }])
    })
    .save(&path)
    .unwrap();
    let options = ImageOptions {
        image_size: 16,
        load_size: 32,
        ..ImageOptions::default()
    };
    let loaded = options.load(&path, Some(1)).unwrap();
    let grey = read_grey(&path, &options.dicom).unwrap();
    assert_eq!(loaded, options.prepare(&grey, Some(1)));
    assert_eq!(loaded.len(), 3 * 16 * 16);
    let missing = dir.path().join("missing.png");
    let error = options.load(&missing, None).unwrap_err().to_string();
    assert!(error.contains("missing.png"), "{error}");
}
