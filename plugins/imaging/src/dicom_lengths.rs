//! Declared lengths of a DICOM file checked against the bytes it has, before `dicom-object`
//! parses it.
//!
//! `dicom-parser` 0.10 allocates (and zero-fills) a value buffer of whatever length an element
//! header declares before reading it, so a 500-byte file declaring a 1 GB value takes a gigabyte
//! and seconds (found by fuzzing). [`check_declared_lengths`] walks the element headers of the
//! file meta group and the data set — explicit or implicit VR, little or big endian; sequences,
//! items and encapsulated pixel fragments inline — and refuses the first defined length that runs
//! past the end of the file, naming the tag and the offset. Deflated data sets are compressed and
//! are left to the parser.

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

/// An undefined length (sequences, items, encapsulated pixel data).
const UNDEFINED: u32 = 0xFFFF_FFFF;
/// Item, item delimitation and sequence delimitation tags (group FFFE).
const ITEM_GROUP: u16 = 0xFFFE;

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let out: [u8; N] = self.bytes.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(out)
    }
    fn u16(&mut self, big: bool) -> Option<u16> {
        let b = self.take::<2>()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&mut self, big: bool) -> Option<u32> {
        let b = self.take::<4>()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

/// VRs whose explicit header has a 2-byte length (PS3.5 7.1.2); every other VR, unknown ones
/// included, has 2 reserved bytes and a 4-byte length: exactly how `dicom-encoding` 0.10 reads
/// them (an unknown VR becomes UN), so the walk stays aligned with the parser.
fn short_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Walks the element headers of `bytes` (a whole DICOM file) and returns a message for the
/// first element whose defined length runs past the end; `Ok` when every length fits (or the
/// data set is deflated). A header cut off by the end of the file ends the walk without an
/// error (the parser reports it, naming what it was reading).
pub(crate) fn check_declared_lengths(bytes: &[u8]) -> Result<(), String> {
    let preamble = bytes.get(128..132) == Some(b"DICM".as_slice());
    let mut cursor = Cursor {
        bytes,
        at: if preamble { 132 } else { 0 },
    };
    // The file meta group: always explicit VR little endian; it names the data set's syntax.
    let mut syntax = Syntax::ExplicitLittle;
    loop {
        let start = cursor.at;
        let Some(group) = cursor.u16(false) else {
            return Ok(());
        };
        if group != 0x0002 {
            cursor.at = start;
            break;
        }
        let header = element(&mut cursor, Syntax::ExplicitLittle, group, &mut false)?;
        if header == Header::Cut {
            return Ok(());
        }
        if let Header::Skipped {
            number: 0x0010,
            value,
        } = header
        {
            let uid = String::from_utf8_lossy(value);
            match uid.trim_end_matches(['\0', ' ']) {
                "1.2.840.10008.1.2" => syntax = Syntax::ImplicitLittle,
                "1.2.840.10008.1.2.2" => syntax = Syntax::ExplicitBig,
                // Deflated: the rest is compressed; the parser inflates it.
                "1.2.840.10008.1.2.1.99" => return Ok(()),
                _ => syntax = Syntax::ExplicitLittle,
            }
        }
    }
    // Inside encapsulated pixel data: items are fragments of compressed bytes, not elements.
    let mut fragments = false;
    while cursor.remaining() > 0 {
        let big = syntax == Syntax::ExplicitBig;
        let Some(group) = cursor.u16(big) else {
            return Ok(());
        };
        if element(&mut cursor, syntax, group, &mut fragments)? == Header::Cut {
            return Ok(());
        }
    }
    Ok(())
}

/// What [`element`] found after a group number.
#[derive(Debug, PartialEq)]
enum Header<'a> {
    /// The header is cut off by the end of the file (left to the parser).
    Cut,
    /// A sequence, item or undefined-length value: its content follows and is walked inline.
    Inline,
    /// A value of defined length, skipped (returned so the meta group's syntax can be read).
    Skipped { number: u16, value: &'a [u8] },
}

/// Reads one element header after its group number and skips its value when it is not walked
/// inline, refusing a defined length that runs past the end of the file.
fn element<'a>(
    cursor: &mut Cursor<'a>,
    syntax: Syntax,
    group: u16,
    fragments: &mut bool,
) -> Result<Header<'a>, String> {
    let offset = cursor.at.saturating_sub(2);
    // Item and delimiter tags (group FFFE) have no VR in any syntax (PS3.5 7.5).
    let big = syntax == Syntax::ExplicitBig;
    let Some(number) = cursor.u16(big) else {
        return Ok(Header::Cut);
    };
    let (length, inline) = if group == ITEM_GROUP {
        let Some(length) = cursor.u32(big) else {
            return Ok(Header::Cut);
        };
        (length, false)
    } else if syntax == Syntax::ImplicitLittle {
        let Some(length) = cursor.u32(false) else {
            return Ok(Header::Cut);
        };
        // Without VRs a sequence of defined length is known by its first item's tag.
        let item_follows = cursor.bytes.get(cursor.at..cursor.at.saturating_add(4))
            == Some([0xFE, 0xFF, 0x00, 0xE0].as_slice());
        (length, length == UNDEFINED || item_follows)
    } else {
        let Some(vr) = cursor.take::<2>() else {
            return Ok(Header::Cut);
        };
        if !short_vr(vr) {
            if cursor.take::<2>().is_none() {
                return Ok(Header::Cut);
            }
            let Some(length) = cursor.u32(big) else {
                return Ok(Header::Cut);
            };
            (length, length == UNDEFINED || &vr == b"SQ")
        } else {
            let Some(length) = cursor.u16(big) else {
                return Ok(Header::Cut);
            };
            (u32::from(length), false)
        }
    };
    if group == 0x7FE0 && number == 0x0010 && length == UNDEFINED {
        // Encapsulated pixel data: fragments follow until the sequence delimiter.
        *fragments = true;
        return Ok(Header::Inline);
    }
    if group == ITEM_GROUP && number == 0xE0DD {
        *fragments = false;
    }
    if length == UNDEFINED || inline {
        // Sequences and undefined-length values: their items follow inline.
        return Ok(Header::Inline);
    }
    let length = length as usize;
    if length > cursor.remaining() {
        return Err(past_the_end(
            group,
            number,
            offset,
            length,
            cursor.remaining(),
        ));
    }
    if group == ITEM_GROUP && number == 0xE000 && !*fragments {
        // An item of a sequence with a defined length (it fits): its elements follow inline.
        return Ok(Header::Inline);
    }
    let start = cursor.at;
    cursor.at = start.saturating_add(length);
    let value = cursor.bytes.get(start..cursor.at).unwrap_or_default();
    Ok(Header::Skipped { number, value })
}

fn past_the_end(group: u16, number: u16, offset: usize, length: usize, remaining: usize) -> String {
    format!(
        "element ({group:04X},{number:04X}) at byte {offset} declares {length} bytes but only \
         {remaining} follow in the file"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(group: u16, number: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(group.to_le_bytes());
        out.extend(number.to_le_bytes());
        out.extend(vr);
        if !short_vr(*vr) {
            out.extend([0, 0]);
            out.extend((value.len() as u32).to_le_bytes());
        } else {
            out.extend((value.len() as u16).to_le_bytes());
        }
        out.extend(value);
        out
    }

    fn file(body: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        out.extend(explicit(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"));
        out.extend(body);
        out
    }

    #[test]
    fn lengths_that_fit_pass() {
        let body = [
            explicit(0x0008, 0x0060, b"CS", b"DX"),
            explicit(0x7FE0, 0x0010, b"OW", &[0u8; 16]),
        ]
        .concat();
        assert_eq!(check_declared_lengths(&file(&body)), Ok(()));
    }

    #[test]
    fn a_value_longer_than_the_file_is_named() {
        let mut body = explicit(0x7FE0, 0x0010, b"OB", &[0u8; 16]);
        // Declare 1 GB instead of 16 bytes.
        body.splice(8..12, (1u32 << 30).to_le_bytes());
        let message = check_declared_lengths(&file(&body)).unwrap_err();
        assert!(message.contains("(7FE0,0010)"), "{message}");
        assert!(
            message.contains("1073741824 bytes but only 16"),
            "{message}"
        );
    }
}
