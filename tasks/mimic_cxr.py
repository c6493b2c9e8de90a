"""MIMIC-CXR reports -> mibe document (findings -> impression).

Two layouts:
* the free-text reports as PhysioNet ships them (`mimic-cxr-reports.zip`, unzipped):
  `files/pNN/pNNNNNNNN/sNNNNNNNN.txt`. `read` finds them anywhere under the path it is given. When
  the MIMIC-CXR-JPG split list (`mimic-cxr-2.0.0-split.csv[.gz]`: dicom_id, study_id, subject_id,
  split) lies in that folder, its `test` / `train` / `validate` studies are the splits; without it
  every report is the evaluation set.
* a CSV of sections, as MIT-LCP's `create_section_files.py` writes it (`mimic_cxr_sectioned.csv`:
  study, impression, findings, last_paragraph, comparison) or as users derive it (study_id,
  findings, impression; column names in any case). Read as usual; rows reach `to_doc`.

Sections follow MIT-LCP's `section_parser.py`: a heading is a name and a colon at the start of a
line, all in capitals (any name) or a known name in any case ("Impression:"); names are
normalised as there (CONCLUSION and FINDINGS AND IMPRESSION count as the impression, typos such
as IMPRESSON and FINIDNGS are mapped, view titles such as "PA AND LATERAL VIEWS OF THE CHEST"
count as findings); empty sections are dropped and the last of each kind is kept. Its per-study
manual corrections are not applied. A report without both a findings and an impression section is
unusable and counted (a combined FINDINGS AND IMPRESSION section gives no findings to summarise).
`text` is the findings and the gold the impression, each with whitespace collapsed to single
spaces, as Me-LLaMA's preprocessing joined each section's sentences (template: prompts/mimic_cxr.jinja).
"""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

from mibe.types import Doc, MibeError

SPLIT_LIST = ("mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.0.0-split.csv")
SPLIT_NAMES = {"validate": "validate", "validation": "validate", "val": "validate", "dev": "validate"}
_REPORT = re.compile(r"s\d+\.txt")
_HEADING = re.compile(r"^[ \t]*([A-Za-z][A-Za-z ()/,&-]*?)[ \t]*:(?=\s|$)", re.M)
# section_parser.py's spellings of the two sections mibe needs (typos included), plus plurals.
IMPRESSION_NAMES = (
    "impression", "impressions", "conclusion", "conclusions", "findings and impression",
    "findings/impression", "findings/ impression", "impresson", "imprression", "imoression",
    "impressoin", "imprssion", "impresion", "imperssion", "mpression", "impession",
)  # fmt: skip
FINDINGS_NAMES = (
    "findings", "finding", "findins", "findindgs", "findgings", "findngs", "findnings", "finidngs",
    "reference findings", "chest, two views",
)  # fmt: skip
OTHER_NAMES = (
    "preamble", "comparison", "comparisons", "indication", "examination", "exam", "technique",
    "history", "clinical history", "reason for examination", "reason for exam", "notification",
    "clinical information", "clinical indication", "recommendation", "recommendations",
    "recommendation(s)", "type of examination", "reference exam", "patient history", "addendum",
    "comparison exam", "date", "comment", "wet read", "wetread", "comparison film", "pfi",
)  # fmt: skip
_KNOWN = {
    **{n: "other" for n in OTHER_NAMES},
    **{n: "findings" for n in FINDINGS_NAMES},
    **{n: "impression" for n in IMPRESSION_NAMES},
}
_VIEW_TITLES = re.compile(
    r"chest|portable|pa and lateral|lateral and pa|ap and lateral|lateral and ap|frontal and|two views"
    r"|frontal view|pa view|ap view|one view|lateral view|bone window|frontal upright"
    r"|frontal semi-upright|ribs|pa and lat"
)


def section_kind(heading: str) -> str:
    """'impression', 'findings' or 'other' for a heading, normalised as section_parser.py does."""
    name = " ".join(heading.lower().split())
    if name in _KNOWN:
        return _KNOWN[name]
    for main in ("impression", "findings"):
        if main in name:
            return main
    return "findings" if _VIEW_TITLES.search(name) else "other"


def sections(report: str) -> dict[str, str]:
    """The last non-empty findings and impression of a report, whitespace collapsed."""
    found: dict[str, str] = {}
    marks = [
        m for m in _HEADING.finditer(report) if m.group(1).isupper() or m.group(1).lower().strip() in _KNOWN
    ]
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(report)
        body = " ".join(report[mark.end() : end].split())
        kind = section_kind(mark.group(1))
        if kind != "other" and body:
            found[kind] = body
    return found


def _split_of(folder: Path) -> dict[str, str] | None:
    for name in SPLIT_LIST:
        path = folder / name
        if path.is_file():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                if not {"study_id", "split"} <= set(reader.fieldnames or ()):
                    raise MibeError(f"{path}: expected the columns study_id and split (MIMIC-CXR-JPG's list)")
                return {f"s{row['study_id']}": row["split"] for row in reader}
    return None


def read(path: Path, split: str) -> list[dict] | None:
    if not path.is_dir():
        return None  # a CSV of sections: read as usual
    reports = sorted(
        p for p in path.rglob("s*.txt") if _REPORT.fullmatch(p.name) and re.fullmatch(r"p\d+", p.parent.name)
    )
    if not reports:
        return None
    splits = _split_of(path)
    if splits is not None:
        wanted = SPLIT_NAMES.get(split, split)
        reports = [p for p in reports if splits.get(p.stem) == wanted]
    return [
        {
            "study_id": p.stem,
            "subject_id": p.parent.name,
            "report": p.read_text(encoding="utf-8", errors="replace"),
            "__where__": str(p.relative_to(path)),
        }
        for p in reports
    ]


def _column(row: dict, *names: str) -> str:
    lower = {str(k).strip().lower(): v for k, v in row.items()}
    for name in names:
        value = lower.get(name)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return ""


def to_doc(row: dict) -> Doc | None:
    if "report" in row:
        found = sections(str(row["report"]))
        findings, impression = found.get("findings", ""), found.get("impression", "")
        doc_id = str(row.get("study_id", ""))
    else:
        findings, impression = _column(row, "findings"), _column(row, "impression")
        doc_id = _column(row, "study_id", "study", "id")
    if not findings or not impression:
        missing = " and ".join(n for n, v in (("FINDINGS", findings), ("IMPRESSION", impression)) if not v)
        raise ValueError(f"no {missing} section (a report needs both to be summarised)")
    if not doc_id:
        raise ValueError("study_id: missing (and no study or id column)")
    return Doc(
        id=doc_id, fields={"text": findings}, gold=impression, invented=bool(row.get("invented", False))
    )
