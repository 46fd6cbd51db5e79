"""Golden values for the RG1 chest radiograph in four DICOM encodings (pydicom-data wheel).

    ~/.cache/cleft-golden-venv/bin/python tools/golden_dicom.py [ASSETS_DIR] > fixtures/imaging/rg1_golden.json

Needs pydicom, numpy, pylibjpeg, pylibjpeg-openjpeg (the JPEG 2000 decoder pydicom uses).
For every file: rows, columns, bits stored, photometric interpretation, transfer syntax, raw
(stored) pixel sum/min/max and 16 pixels sampled on a fixed 4x4 grid.

Despite the names, all four are explicit VR or JPEG 2000: RG1_UNCR is the lossless original
(RG1_J2KR is it as JPEG 2000 reversible), RG1_J2KI is it as JPEG 2000 irreversible 10:1 and
RG1_UNCI is RG1_J2KI decoded and stored uncompressed. `differences` records the mean and max
absolute difference of pydicom's decodes between pairs: zero for J2KR/UNCR and J2KI/UNCI, the
codec's loss for J2KI/UNCR.
"""
import json
import os
import sys

import numpy as np
import pydicom

FILES = ["RG1_UNCI", "RG1_UNCR", "RG1_J2KR", "RG1_J2KI"]
GRID = 4


def sample_coords(rows, cols):
    return [
        [rows * (2 * i + 1) // (2 * GRID), cols * (2 * j + 1) // (2 * GRID)]
        for i in range(GRID)
        for j in range(GRID)
    ]


def main():
    assets = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CLEFT_ASSETS") or os.path.expanduser("~/.cache/cleft-assets"))
    out = {"source": "pydicom-data 1.0.0 wheel, decoded by pydicom " + pydicom.__version__,
           "files": {}}
    pixels = {}
    for name in FILES:
        ds = pydicom.dcmread(os.path.join(assets, "dicom", name + ".dcm"))
        arr = ds.pixel_array.astype(np.int64)
        pixels[name] = arr
        rows, cols = int(ds.Rows), int(ds.Columns)
        coords = sample_coords(rows, cols)
        out["files"][name] = {
            "rows": rows,
            "columns": cols,
            "bits_allocated": int(ds.BitsAllocated),
            "bits_stored": int(ds.BitsStored),
            "photometric_interpretation": str(ds.PhotometricInterpretation),
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            "rescale_slope": float(getattr(ds, "RescaleSlope", 1.0)),
            "rescale_intercept": float(getattr(ds, "RescaleIntercept", 0.0)),
            "raw_sum": int(arr.sum()),
            "raw_min": int(arr.min()),
            "raw_max": int(arr.max()),
            "sample_coords": coords,
            "sample_values": [int(arr[r, c]) for r, c in coords],
        }
    out["differences"] = {}
    for a, b in [("RG1_J2KR", "RG1_UNCR"), ("RG1_J2KI", "RG1_UNCI"), ("RG1_J2KI", "RG1_UNCR")]:
        diff = np.abs(pixels[a] - pixels[b])
        out["differences"][f"{a} vs {b}"] = {
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": int(diff.max()),
        }
    # one line per file keeps the fixture short and diffable
    lines = ["{", f' "source": {json.dumps(out["source"])},', ' "files": {']
    items = list(out["files"].items())
    for i, (name, entry) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        lines.append(f"  {json.dumps(name)}: {json.dumps(entry)}{comma}")
    lines.append(" },")
    lines.append(f' "differences": {json.dumps(out["differences"])}')
    lines.append("}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
