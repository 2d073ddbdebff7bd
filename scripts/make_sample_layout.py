"""Writes the sample layout sheet filespecs/layouts/employee_roster_fixed_layout.xlsx and, with
LibreOffice (`soffice`, installed by scripts/setup.sh), its legacy .xls copy.

The sheet is the kind clients send: a banner row, loosely named columns ("Field Name", "Start Pos",
"Len", "Data Type", "Mandatory (Y/N)", "Valid Values"), a column the importer does not know
("Seq", "Owner"), and a type it cannot map (COMP-3), so `import-spec` shows all it does.
Run: python scripts/make_sample_layout.py  (then compare with filespecs/layouts/employee_roster_fixed.yaml).
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openpyxl import Workbook

LAYOUTS = Path(__file__).resolve().parent.parent / "filespecs" / "layouts"
NAME = "employee_roster_fixed_layout"

HEADER = ["Seq", "Field Name", "Start Pos", "Len", "End", "Data Type", "Format", "Mandatory (Y/N)", "Valid Values",
          "Description", "Owner"]  # fmt: skip
ROWS = [
    [1, "Employee ID", 1, 9, 9, "CHAR", None, "Y", None, "Employee number: E and 8 digits", "HR"],
    [2, "First Name", 10, 20, 29, "Alpha", None, "Y", None, "Given name", "HR"],
    [3, "Last Name", 30, 20, 49, "Alpha", None, "Y", None, "Family name", "HR"],
    [4, "State", 50, 2, 51, "CHAR", None, "Y", None, "US state code", None],
    [5, "Hire Date", 52, 8, 59, "Date", "CCYYMMDD", "Y", None, "First day of employment", "HR"],
    [6, "Salary", 60, 10, 69, "Numeric(10,2)", None, "N", None, "Yearly salary in USD", "Payroll"],
    [7, "Hours Per Week", 70, 3, 72, "PIC 9(3)", None, "N", None, "Contracted hours", "Payroll"],
    [8, "Status", 73, 1, 73, "CHAR", None, "Y", "A=Active, L=Leave, T=Terminated", "Employment status", "HR"],
    [9, "Full Time", 74, 1, 74, "Flag", "Y/N", "N", None, "Works full time", None],
    [10, "Bonus", 75, 5, 79, "COMP-3", None, "N", None, "Packed bonus amount", "Payroll"],
    [11, "Filler", 80, 1, 80, "X", None, "N", None, None, None],
]


def main() -> int:
    LAYOUTS.mkdir(parents=True, exist_ok=True)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Layout"
    sheet.append(["EMPLOYEE ROSTER - FIXED WIDTH FILE LAYOUT (legacy system, rev 3)"])
    sheet.append([])
    sheet.append(HEADER)
    for row in ROWS:
        sheet.append(row)
    xlsx = LAYOUTS / f"{NAME}.xlsx"
    workbook.save(xlsx)
    print(f"wrote {xlsx}")
    soffice = shutil.which("soffice")
    if soffice is None:
        print("soffice (LibreOffice) is not installed: the .xls copy was not written", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as profile:  # its own profile: no clash with another soffice
        subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xls",
                        "--outdir", str(LAYOUTS), str(xlsx)], check=True, capture_output=True, timeout=300)  # fmt: skip
    print(f"wrote {LAYOUTS / (NAME + '.xls')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
