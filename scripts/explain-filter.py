"""Keeps auto_explain's plans of scripts/explain-hot-statements readable: the
per-row foreign-key checks of attempt rows (one tiny plan each) are counted per
statement instead of printed, and a long array argument (256 job ids in a
statement's own plan) is shown by its length."""
import re
import sys

out, entry, fk = [], [], 0


def flush():
    global entry, fk
    if len(entry) > 1 and entry[1].startswith("Query Text: SELECT 1 FROM ONLY"):
        fk += 1
    else:
        out.extend(entry)
    entry = []


def section_end():
    global fk
    flush()
    if fk:
        out.append(f"({fk} foreign-key checks of attempt rows, one primary-key probe each, not shown)")
    fk = 0


def shorten(match):
    return "'{%d elements}'" % (match.group(1).count(",") + 1)


for line in sys.stdin.read().splitlines():
    line = re.sub(r"'\{([^'{}]{100,})\}'", shorten, line)
    if line.startswith("==="):
        section_end()
        out.extend(["", line])
    elif line.startswith("LOG:  duration"):
        flush()
        entry = [line]
    elif entry:
        entry.append(line)
    else:
        out.append(line)
section_end()
print("\n".join(out))
