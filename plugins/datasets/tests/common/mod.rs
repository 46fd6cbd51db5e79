//! Fixture trees in the data sets' real formats: CSVs as shipped, tiny PNG and DICOM images.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// A fresh empty folder under the target's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-datasets-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `size`×`size` grey PNG: a bright square of `level` on black (so Otsu finds it).
pub fn write_png(path: &Path, size: u32, level: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::GrayImage::from_fn(size, size, |x, y| {
        let inside = (size / 4..3 * size / 4).contains(&x) && (size / 4..3 * size / 4).contains(&y);
        image::Luma([if inside { level } else { 0 }])
    });
    image.save(path).unwrap();
}

/// A `size`×`size` 16-bit MONOCHROME2 DICOM (explicit VR little endian), bright square inside.
pub fn write_dicom(path: &Path, size: u16, level: u16) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut pixels = Vec::with_capacity(size as usize * size as usize * 2);
    for y in 0..size {
        for x in 0..size {
            let inside =
                (size / 4..3 * size / 4).contains(&x) && (size / 4..3 * size / 4).contains(&y);
            pixels.extend_from_slice(&(if inside { level } else { 0 }).to_le_bytes());
        }
    }
    let mut object = InMemDicomObject::new_empty();
    let put = |object: &mut InMemDicomObject, tag, vr, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(
        &mut object,
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.1.1"),
    );
    put(
        &mut object,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from("1.2.3.4.5"),
    );
    put(
        &mut object,
        tags::MODALITY,
        VR::CS,
        PrimitiveValue::from("DX"),
    );
    put(
        &mut object,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(
        &mut object,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("MONOCHROME2"),
    );
    put(&mut object, tags::ROWS, VR::US, PrimitiveValue::from(size));
    put(
        &mut object,
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(size),
    );
    put(
        &mut object,
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(
        &mut object,
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(12u16),
    );
    put(
        &mut object,
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(11u16),
    );
    put(
        &mut object,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    put(
        &mut object,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(pixels),
    );
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.1.1")
                .media_storage_sop_instance_uid("1.2.3.4.5"),
        )
        .unwrap();
    file.write_to_file(path).unwrap();
}

/// The CheXpert header as Stanford ships it.
pub const CHEXPERT_HEADER: &str = "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices";

/// One CheXpert row: `findings` maps column name → value ("1.0", "-1.0", "0.0"); others empty.
pub fn chexpert_row(path: &str, frontal: bool, view: &str, findings: &[(&str, &str)]) -> String {
    let columns: Vec<&str> = CHEXPERT_HEADER.split(',').skip(5).collect();
    let values: Vec<String> = columns
        .iter()
        .map(|c| {
            findings
                .iter()
                .find(|(name, _)| name == c)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        })
        .collect();
    format!(
        "{path},Female,68,{},{},{}",
        if frontal { "Frontal" } else { "Lateral" },
        view,
        values.join(",")
    )
}
