"""The nearest known word to a typo ("nosuidd" -> "nosuid"), for "did you mean" hints.

Not difflib: through heapq it reaches doctest, which the single binary leaves out.
"""


def distance(a, b):
    """Edit distance: insertions, deletions, substitutions and swaps of two neighbours
    ("mdoe" is one step from "mode")."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1,
                         rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def nearest(word, candidates):
    """The candidate closest to ``word``, or None when none is close (at most a third of
    the word's letters differ)."""
    best, best_distance = None, None
    for candidate in sorted(candidates):
        d = distance(word.lower(), candidate.lower())
        if best_distance is None or d < best_distance:
            best, best_distance = candidate, d
    if best is None or best_distance > max(1, len(word) // 3):
        return None
    return best
