#!/usr/bin/python3
"""Write a recipient list for the newsletter test template.

Usage: make-recipients.py N [FILE]   (FILE defaults to standard output)

The output is deterministic: row i always has the same values. Addresses
are rcpt-NNNN@example.test. Some names are not ASCII, and some cities
contain a comma, so the file has quoted fields.
"""
import csv
import io
import sys

FIRST = ["Anna", "Jörg", "Zoë", "Łukasz", "Marie", "Søren", "François", "Ben",
         "Chloé", "Ömer", "Ines", "José"]
LAST = ["Müller", "Schmidt", "O'Brien", "Dvořák", "Weiß", "Nakamura", "Ångström",
        "Smith", "García", "Øster"]
CITY = ["Neustadt", "Frankfurt, Main", "Köln", "Halle (Saale)", "Zürich",
        "Brandenburg an der Havel", "Freiburg, Breisgau", "Lübeck"]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: make-recipients.py N [FILE]")
    count = int(sys.argv[1])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "first_name", "last_name", "city"])
    for i in range(1, count + 1):
        writer.writerow([
            "rcpt-%04d@example.test" % i,
            FIRST[i % len(FIRST)],
            LAST[(i * 7) % len(LAST)],
            CITY[(i * 3) % len(CITY)],
        ])
    if len(sys.argv) == 3:
        with open(sys.argv[2], "w", encoding="utf-8", newline="") as f:
            f.write(out.getvalue())
    else:
        sys.stdout.write(out.getvalue())


if __name__ == "__main__":
    main()
